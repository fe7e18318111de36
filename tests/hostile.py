"""Shared checks of the hostile-input tests: run the CLI in-process, and prove nothing else changed."""

from pathlib import Path

from fnlearn import cli


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` (relative, '/'-separated) -> its bytes, or None for a directory."""
    tree = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            tree[key] = b"-> " + str(path.readlink()).encode()
        elif path.is_dir():
            tree[key] = None
        else:
            tree[key] = path.read_bytes()
    return tree


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``fnlearn ARGS`` in this process: (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *needles: str) -> str:
    """stderr is exactly one ``fnlearn: error: ...`` line, no traceback, holding every needle."""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and err.count("\n") == 1, err
    assert lines[0].startswith("fnlearn: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_one_line(message: str, *needles: str) -> None:
    """An exception message: one line (no line break of any kind) holding every needle."""
    assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


def assert_fnlearn_error(error, *culprits: str) -> str:
    """A ``pytest.raises`` result: a FnlearnError of one line that names every culprit."""
    from fnlearn.errors import FnlearnError

    assert isinstance(error.value, FnlearnError)
    message = str(error.value)
    assert_one_line(message, *culprits)
    return message
