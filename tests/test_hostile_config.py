"""Hostile configs: every mistake is one line naming the key, found before anything is written.

Through the command line (exit status 2, one ``fnlearn: error:`` line, the folder unchanged byte
for byte), through the Python API (one FnlearnError line), and a hypothesis fuzzer that feeds junk
configs, TOML text and --set/--grid strings through loads / from_dict / parse_override /
expand_sweep / build and accepts only FnlearnError.
"""

import dataclasses
import inspect
import tomllib
import typing

import pytest
from hostile import assert_one_error_line, assert_one_line, run_cli, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fnlearn import config as C
from fnlearn.config.parse import _set_path
from fnlearn.config.toml import _deep_copy, _toml_string
from fnlearn.errors import FnlearnError
from fnlearn.runs.build import build

# A valid config that would train quickly, so each case below differs from it by one mistake.
OK = """\
[data]
name = "two_moons"
options = {n = 60}
[model]
sizes = [4]
[training]
epochs = 1
batch_size = 8
[logging]
plots = false
"""

NAME_RULE = "expected a run name: one folder name"
LABEL_RULE = "expected a run label: one folder name"

# (config text or bytes, command line after the config, text the one line must contain)
CLI_CASES = [
    # names that become the run directory runs/NAME
    ('name = ".."\n', [], ['name = "..": ' + NAME_RULE, "not a path", 'Fix: name = "run"']),
    ('name = "../x"\n', [], ['name = "../x": ' + NAME_RULE, 'Fix: name = "x"']),
    ('name = "/tmp/abs"\n', [], ['name = "/tmp/abs": ' + NAME_RULE, 'Fix: name = "tmp-abs"']),
    ('name = "a/b"\n', [], ['name = "a/b": ' + NAME_RULE]),
    ("name = 'a\\b'\n", [], ['name = "a\\\\b": ' + NAME_RULE]),
    ('name = "."\n', [], ['name = ".": ' + NAME_RULE]),
    ('name = "-rf"\n', [], ['name = "-rf": ' + NAME_RULE, 'Fix: name = "rf"']),
    ('name = ".hidden"\n', [], ['name = ".hidden": ' + NAME_RULE]),
    (f'name = "{"x" * 201}"\n', [], ["name = ", "at most 200 characters"]),
    ('name = "a\\u0000b"\n', [], ['name = "a\\u0000b": ' + NAME_RULE]),
    ('name = "tab\\there"\n', [], ['name = "tab\\there": ' + NAME_RULE]),
    ('name = "line\\u2028break"\n', [], ['name = "line\\u2028break": ' + NAME_RULE]),
    ('name = "C:x"\n', [], ['name = "C:x": ' + NAME_RULE]),
    ('name = "café"\n', [], ['name = "café": ' + NAME_RULE]),
    ("", ["--set", 'name="../../etc"'], ['name = "../../etc": ' + NAME_RULE]),
    ("", ["--set", "name=[1]"], ["name = [1]: expected a string, got a list"]),
    # sweep labels that become OUT/LABEL
    ('[[sweep.variants]]\nlabel = "../x"\n', "sweep", ['sweep.variants[0].label = "../x": ' + LABEL_RULE]),
    ('[[sweep.variants]]\nlabel = "/etc"\n', "sweep", ['sweep.variants[0].label = "/etc": ' + LABEL_RULE]),
    ('[[sweep.variants]]\nlabel = ".."\n', "sweep", ['sweep.variants[0].label = "..": ' + LABEL_RULE]),
    ('[[sweep.variants]]\nlabel = ""\n', "sweep", ['sweep.variants[0].label = "": ' + LABEL_RULE]),
    (
        '[[sweep.variants]]\nlabel = "a"\n[[sweep.variants]]\nlabel = "b c"\n',
        "sweep",
        ['sweep.variants[1].label = "b c": ' + LABEL_RULE, 'Fix: sweep.variants[1].label = "b-c"'],
    ),
    (
        "[[sweep.variants]]\nlabel = 3\n",
        "sweep",
        ["sweep.variants[0].label = 3: expected a run label (a string)"],
    ),
    ("[sweep]\nvariants = 5\n", "sweep", ["sweep.variants = 5: expected a list of tables"]),
    (
        '[sweep.grid]\n"model.dropout" = 0.5\n',
        "sweep",
        ['sweep.grid."model.dropout" = 0.5: expected a non-empty list'],
    ),
    ("[sweep]\nvariants = [{training = 5}]\nseeds = 2\n", "sweep", ["training = 5 is a value, not a table"]),
    (
        "",
        ["sweep", "--seeds", "20000"],
        ["sweep: 1 configurations x 20000 seeds = 20000 runs; at most 10000"],
    ),
    (
        "",
        [
            "sweep",
            "--grid",
            "model.dropout=" + ",".join(f"0.{i:03d}" for i in range(101)),
            "--grid",
            "loss.l2=" + ",".join(str(i) for i in range(100)),
        ],
        ["= 10100 runs; at most 10000"],
    ),
    # pathological TOML
    (
        "a = " + "[" * 10_000 + "]" * 10_000 + "\n",
        [],
        ["config file 'bad.toml': arrays or tables nested too deeply"],
    ),
    ("a = " + "[" * 40 + "]" * 40 + "\n", [], ["a[0][0]", "nested more than 32 deep"]),
    ("", ["--set", "model.sizes=" + "[" * 10_000], ["--set", "nested too deeply to read"]),
    (
        "[training]\nepochs = 99999999999999999999999\n",
        [],
        ["training.epochs = 99999999999999999999999: expected an integer in the 64-bit range"],
    ),
    ("", ["--set", "training.epochs=99999999999999999999999"], ["training.epochs = 99999999999999999999999"]),
    (
        "[optimizer.options]\nb1 = -99999999999999999999\n",
        [],
        ["optimizer.options.b1 = -99999999999999999999"],
    ),
    ("[training]\nseeds = [1, 99999999999999999999]\n", [], ["training.seeds[1] = 99999999999999999999"]),
    (
        "[training]\nepochs = " + "9" * 5000 + "\n",
        [],
        ["config file 'bad.toml': a number is too long to read"],
    ),
    ("[training]\nepochs = 2147483648\n", [], ["training.epochs = 2147483648: out of range", "2^31-1"]),
    ("[model]\nsizes = [4, 2147483648]\n", [], ["model.sizes = [4, 2147483648]: out of range", "2^31-1"]),
    ("[training]\nepochs = 2147483647\n", [], ["training.epochs = 2147483647: out of range", "steps = "]),
    (
        "[optimizer]\nlearning_rate = 1e999\n",
        [],
        ["optimizer.learning_rate = inf: out of range: expected a finite number"],
    ),
    (
        "[optimizer]\nlearning_rate = nan\n",
        [],
        ["optimizer.learning_rate = nan: out of range: expected a finite number"],
    ),
    ("", ["--set", "loss.l2=-inf"], ["loss.l2 = -inf: out of range: expected a finite number"]),
    ("", ["--set", "data.val=nan"], ["data.val = nan: out of range: expected a finite number"]),
    (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
        [],
        ["config file 'bad.toml' is not UTF-8 text (byte 0 is b'\\x89')"],
    ),
    (b"name = 'a'\nx = 1\x00\n", [], ["config file 'bad.toml' is not valid TOML at line 2, column 6"]),
    ("[training]\nepochs = 3\nbatch = = 4\n", [], ["is not valid TOML at line 3, column 9: Invalid value"]),
    ('name = "unterminated\n', [], ["is not valid TOML at line 1, column 21: Illegal character '\\n'"]),
    ('name = """x\n', [], ["is not valid TOML at end of document: Unterminated string"]),
    ("[model\nsizes = [1]\n", [], ["is not valid TOML at line 1, column 7"]),
    (
        "[training]\nepochs = 1979-05-27\n",
        [],
        ["training.epochs = 1979-05-27: expected a string, number", "dates and times"],
    ),
    (
        "[optimizer.options]\nb1 = 07:32:00\n",
        [],
        ["optimizer.options.b1 = 07:32:00: expected a string, number"],
    ),
    # config mistakes of every kind
    ("[optimiser]\nname = 'adam'\n", [], ["optimiser: unknown key. Did you mean 'optimizer'?"]),
    (
        "[training.early_stopping]\npatence = 3\n",
        [],
        ["training.early_stopping.patence: unknown key. Did you mean 'patience'?"],
    ),
    ('"a\\nb" = 1\n', [], ['"a\\nb": unknown key']),
    ('[model]\n"size\\u0000s" = [1]\n', [], ['model."size\\u0000s": unknown key']),
    ("[training]\nepochs = 'ten'\n", [], ['training.epochs = "ten": expected an integer, got a string']),
    ("[training]\nepochs = 2.5\n", [], ["training.epochs = 2.5: expected an integer, got a number"]),
    ("[model]\nsizes = 'big'\n", [], ['model.sizes = "big": expected a list of integers']),
    ("[model]\nsizes = [4, 2.5]\n", [], ["model.sizes = [4, 2.5]: expected a list of integers"]),
    ("training = 5\n", [], ["training = 5: expected a table [training], got an integer"]),
    ("[model]\nresidual = 1\n", [], ["model.residual = 1: expected true or false, got an integer"]),
    ("[optimizer]\nname = 'adamm'\n", [], ['optimizer.name = "adamm": unknown optimizer. Did you mean']),
    (
        "[model]\nactivation = 'rellu'\n",
        [],
        ["model.activation = \"rellu\": unknown activation. Did you mean 'relu'?"],
    ),
    (
        "[loss]\npenalty_mask = 'weight_only'\n",
        [],
        ['loss.penalty_mask = "weight_only": out of range: expected one of'],
    ),
    (
        "[model]\nsizes = [-1]\n",
        [],
        ["model.sizes = [-1]: out of range: expected a list of integers each >= 1"],
    ),
    ("[training]\nbatch_size = 0\n", [], ["training.batch_size = 0: out of range: expected an integer >= 1"]),
    ("[model]\ndropout = 1.5\n", [], ["model.dropout = 1.5: out of range: expected a number in [0, 1)"]),
    (
        "[training]\nbatch_size = 5000\n",
        [],
        ["training.batch_size = 5000: out of range: expected an integer <= "],
    ),
    (
        '[optimizer]\noptions = {b1 = "x"}\n',
        [],
        ['optimizer.options.b1 = "x": expected a number, got a string'],
    ),
    (
        "[optimizer]\noptions = {nesterov = 1}\n",
        [],
        ["optimizer.options.nesterov = 1: expected true or false"],
    ),
    (
        "[optimizer.schedule]\nname = 'cosine_decay'\noptions = {decay_steps = 1.5}\n",
        [],
        ["optimizer.schedule.options.decay_steps = 1.5: expected an integer, got a number"],
    ),
    ("", ["--set", "optimizer.learning_rate"], ["--set 'optimizer.learning_rate': expected KEY=VALUE"]),
    ("", ["--set", "a..b=1"], ["--set 'a..b=1': the key 'a..b' has an empty part"]),
    ("", ["--set", "model.sizes=[1,"], ['--set "model.sizes=[1,": the value is not a TOML literal']),
    ("", ["--set", "name=two words"], ['--set "name=two words": the value is not a TOML literal']),
    (
        "[optimizer]\nname = 'sgd'\n",
        ["--set", "optimizer.name.x=1"],
        ['optimizer.name = "sgd" is a value, not a table'],
    ),
    (
        "",
        ["--set", 'loss.options={a = "\udcff"}'],
        ['loss.options.a = "\\uDCFF": expected text that is valid Unicode'],
    ),
    (
        "",
        ["sweep", "--grid", "optimizer.learning_rate"],
        ["--grid 'optimizer.learning_rate': expected KEY=V1,V2"],
    ),
    ("", ["sweep", "--grid", "optimizer.learning_rat=1,2"], ["optimizer.learning_rat: unknown key"]),
    (
        "",
        ["sweep", "--grid", "optimizer.learning_rate=1e-3,-1"],
        ["optimizer.learning_rate = -1: out of range"],
    ),
    ("", ["sweep", "--grid", "model.sizes=[4],[" + "[" * 50], ["--set", "the value is not a TOML literal"]),
    ("", ["sweep", "--seeds", "-1"], ["--seeds = -1: expected a positive number of seeds"]),
]


def _args(extra):
    if extra == "sweep":
        return ["sweep", "bad.toml"]
    if extra and extra[0] == "sweep":
        return ["sweep", "bad.toml", *extra[1:]]
    return ["train", "bad.toml", *extra]


@pytest.mark.parametrize(
    "text, extra, needles", CLI_CASES, ids=[f"{i}-{c[2][0][:30]}" for i, c in enumerate(CLI_CASES)]
)
def test_config_mistake_is_one_line_and_writes_nothing(text, extra, needles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_bytes(text if isinstance(text, bytes) else _merge(text).encode())
    (tmp_path / "notes.txt").write_text("the user's own file\n")
    before = snapshot(tmp_path)
    code, out, err = run_cli(_args(extra), capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, *needles)
    assert snapshot(tmp_path) == before  # no run directory, nothing overwritten


def _merge(text: str) -> str:
    """The mistake, plus the sections of OK it does not set (so the config is otherwise valid);
    text that is not TOML as it is."""
    try:
        mistake = tomllib.loads(text)
    except (ValueError, RecursionError):
        return text
    ok = tomllib.loads(OK)
    extra = {k: v for k, v in ok.items() if k not in mistake}
    return text + "\n" + C.dumps(extra) if extra else text


def test_there_are_many_cli_cases():
    assert len(CLI_CASES) >= 70


def test_name_from_an_unsafe_file_name_says_where_it_came_from(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my run.toml").write_text(OK)
    before = snapshot(tmp_path)
    code, _, err = run_cli(["train", "my run.toml"], capsys)
    assert code == 2
    assert_one_error_line(
        err, 'name (the config file\'s name; set name in the file) = "my run"', 'Fix: name = "my-run".'
    )
    assert snapshot(tmp_path) == before


def test_config_that_is_a_directory_or_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.toml").mkdir()
    before = snapshot(tmp_path)
    code, _, err = run_cli(["train", "dir.toml"], capsys)
    assert code == 2 and "It is a directory" in assert_one_error_line(err, "config file 'dir.toml'")
    code, _, err = run_cli(["train", "missing.toml"], capsys)
    assert code == 2 and assert_one_error_line(err, "config file 'missing.toml' does not exist")
    assert snapshot(tmp_path) == before


def test_unreadable_config_file_is_one_line(tmp_path, monkeypatch, capsys):
    """chmod 000 does not stop root (these tests may run as root), so the read itself is refused
    (test_hostile_runs meets the real error as an unprivileged user)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "locked.toml"
    path.write_text(OK)
    path.chmod(0)
    real = type(path).read_bytes

    def refuse(self):
        if self.name == "locked.toml":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    before = snapshot_names(tmp_path)
    code, _, err = run_cli(["train", "locked.toml"], capsys)
    assert code == 1  # a failure of the operating system, not a mistake in the config
    assert_one_error_line(err, "locked.toml: Permission denied")
    assert snapshot_names(tmp_path) == before


def snapshot_names(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# ------------------------------------------------------------------------------------------------
# The same through the Python API


def test_empty_file_is_the_default_config_and_a_bom_is_allowed(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_bytes(b"")
    assert C.load(empty) == C.from_dict({}, name="empty")
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + OK.encode())
    plain = tmp_path / "bom2.toml"
    plain.write_text(OK)
    assert C.load(bom) == dataclasses.replace(C.load(plain), name="bom")


@pytest.mark.parametrize(
    "good", ["a", "run_1", "x.y", "lr=0.01_sizes=64-32", "a+b", "_x", "9", "a" * 200, "a..b", "x-"]
)
def test_safe_names(good):
    assert C.is_safe_name(good)
    C.check_name("name", good)


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "../x", "/x", "a/b", "a\\b", "-x", ".x", "a b", "a\x00", "é", "a" * 201, "C:", 3, None],
)
def test_unsafe_names(bad):
    assert not C.is_safe_name(bad)
    with pytest.raises(FnlearnError) as info:
        C.check_name("name", bad)
    assert_one_line(str(info.value), "name = ")


def test_grid_labels_of_hostile_values_are_safe_and_distinct():
    grid = ['training.early_stopping.monitor="..","/etc/passwd","-rf","a\\u0000b"', "loss.l2=0,1"]
    runs = C.expand_sweep(C.loads(OK), grid)
    labels = [label for label, _ in runs]
    assert labels == [f"monitor={m}_l2={v}" for m in ("x", "etc-passwd", "rf", "a-b") for v in (0, 1)]
    assert [run.training.early_stopping.monitor for _, run in runs[::2]] == [
        "..",
        "/etc/passwd",
        "-rf",
        "a\x00b",
    ]


def test_grid_labels_that_collide_after_slugging_are_one_error():
    with pytest.raises(FnlearnError) as info:
        C.expand_sweep(C.loads(OK), ['training.early_stopping.monitor="..","."'])
    assert_one_line(str(info.value), "sweep: two runs would share the directory 'monitor=x'")


def test_long_grid_labels_are_cut_with_a_hash_and_stay_distinct():
    values = ",".join(f'"{"v" * 250}{i}"' for i in range(3))
    runs = C.expand_sweep(C.loads(OK), [f"training.early_stopping.monitor={values}", "loss.l2=0.0,0.5"])
    labels = [label for label, _ in runs]
    assert len(set(labels)) == 6 and all(C.is_safe_name(label) and len(label) == 200 for label in labels)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=4, unique=True))
@settings(max_examples=60, deadline=None)
def test_any_grid_value_gives_a_safe_label_or_one_error(values):
    grid = ["training.early_stopping.monitor=" + ",".join(_toml_string(v) for v in values)]
    try:
        runs = C.expand_sweep(C.loads(OK), grid)
    except FnlearnError as error:
        assert_one_line(str(error), "two runs would share the directory")
        return
    assert [run.training.early_stopping.monitor for _, run in runs] == values
    assert all(C.is_safe_name(label) for label, _ in runs)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name=\udcff", '--set "name=\\uDCFF": the value is not a TOML literal'),
        ('name="\udcff"', 'name = "\\uDCFF": expected text that is valid Unicode'),
        ("a\nb=1", None),
        ("model.sizes=" + "[" * 600 + "]" * 600, "nested too deeply"),
        ("model.sizes=" + "[" * 40 + "]" * 40, "model.sizes[0][0]"),
        ("training.epochs=" + "9" * 5000, "a number is too long to read"),
    ],
)
def test_parse_override_hostile(text, needle):
    if needle is None:  # an odd key is parsed, and named on one line when it is refused
        assert C.parse_override(text) == (["a\nb"], 1)
        with pytest.raises(FnlearnError) as info:
            C.from_dict(C.apply_overrides({}, [text]))
        assert_one_line(str(info.value), '"a\\nb": unknown key')
        return
    with pytest.raises(FnlearnError) as info:
        C.parse_override(text)
    assert_one_line(str(info.value), needle)


def test_from_dict_refuses_what_toml_cannot_hold():
    for raw, needle in [
        ({"data": {"options": {"f": object()}}}, "data.options.f = "),
        ({"data": {"options": {1: 2}}}, "data.options: the key 1 is not a string"),
        ({"model": {"sizes": (1, 2**64)}}, "model.sizes[1] = 18446744073709551616"),
        ([1, 2], "a config is a table of sections, got a list"),
        ({"name": None}, "name = None: expected a string, number, boolean, array or table, got NoneType"),
    ]:
        with pytest.raises(FnlearnError) as info:
            C.from_dict(raw)
        assert_one_line(str(info.value), needle)


def test_syntax_error_message_is_line_and_column_then_the_problem(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[training]\nepochs = 3\nbatch_size = [1,,]\n")
    with pytest.raises(FnlearnError) as info:
        C.load(path)
    message = str(info.value)
    assert_one_line(message, f"config file '{path}' is not valid TOML at line 3, column 17: Invalid value.")
    assert "(at line" not in message  # tomllib's suffix is turned into the front of the message


# ------------------------------------------------------------------------------------------------
# Fuzzing: junk configs through every entry point; only FnlearnError, on one line, comes out

_HUGE = st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-3, 50),
    _HUGE,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["..", "/", "-x", "auto", "relu", "sgd", "cosine_decay", "val_loss"]),
)
_JUNK = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def _option_names() -> list[str]:
    from fnlearn import optim
    from fnlearn.optim import schedules

    names = {"n", "noise", "seed", "scale", "floor", "df", "components"}
    for table in (optim.OPTIMIZERS, schedules.SCHEDULES):
        for factory in table.values():
            names |= set(inspect.signature(factory).parameters)
    return sorted(names)


def _field_values(f: dataclasses.Field, annotation) -> st.SearchStrategy:
    """Mostly values of the field's type (names from its registry), sometimes junk."""
    names = f.metadata["names"]
    if annotation is bool:
        plausible = st.booleans()
    elif annotation is int:
        plausible = st.integers(-2, 40) | st.integers(1, 4)
    elif annotation is float:
        plausible = st.floats(-0.5, 2.0) | st.sampled_from([0.0, 0.1, 1e-3])
    elif annotation is str:
        plausible = (
            st.sampled_from(sorted(names()))
            if names
            else st.sampled_from(["val_loss", "train_loss", "min", "max", "all", "weights_only"])
        )
    elif annotation is dict:
        plausible = st.dictionaries(st.sampled_from(_option_names()), _SCALAR, max_size=3)
    elif f.metadata["kind"] == "int list":
        plausible = st.lists(st.integers(-1, 8), max_size=3)
    else:  # sweep variants
        plausible = st.lists(
            st.dictionaries(
                st.sampled_from(["label", "model.dropout", "training", "a..b"]), _SCALAR, max_size=2
            ),
            max_size=2,
        )
    return st.one_of(*[plausible] * 8, _JUNK)


def _leaves(cls, prefix: str = "") -> list[tuple[str, st.SearchStrategy]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaves(hints[f.name], key + ".")
        elif key != "data.name":  # the data stay tiny: two_moons
            out.append((key, _field_values(f, hints[f.name])))
    return out


_KNOWN_SETTING = st.sampled_from(_leaves(C.Config)).flatmap(lambda kv: st.tuples(st.just(kv[0]), kv[1]))
_SETTING = st.one_of(*[_KNOWN_SETTING] * 6, st.tuples(st.text(max_size=12), _JUNK))  # or a random key
_OVERRIDE = st.one_of(
    st.text(max_size=20),
    st.builds(
        "{}={}".format,
        st.sampled_from(
            ["training.epochs", "name", "model.sizes", "optimizer.options.b1", "a..b", "sweep.seeds"]
        ),
        st.text(max_size=8)
        | st.sampled_from(["[[[", "1e999", "nan", "99999999999999999999", "..", "{a = 1}"]),
    ),
)
_TOML_PIECES = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        "=",
        '"',
        "'",
        "\n",
        ",",
        ".",
        "name",
        "training",
        "epochs",
        "[training]",
        "[[sweep.variants]]",
        "label",
        "1e999",
        "nan",
        "99999999999999999999",
        "1979-05-27",
        "true",
        "\x00",
        "\ufeff",
        "#",
        '"""',
        "\\",
        " ",
        "sizes",
        "[model]",
        "-1",
        "..",
    ]
)
_BASE = {
    "data": {"name": "two_moons", "options": {"n": 40}},
    "model": {"sizes": [4]},
    "training": {"batch_size": 4},
}
_CACHE: dict = {}


def _only_fnlearn_errors(step) -> None:
    try:
        step()
    except FnlearnError as error:
        assert_one_line(str(error))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_SETTING, max_size=3),
    st.one_of(st.lists(_OVERRIDE, max_size=1), *[st.just([])] * 3),
    st.one_of(st.lists(_OVERRIDE, max_size=1), *[st.just([])] * 3),
)
def test_junk_configs_raise_only_fnlearn_errors(settings_, sets, grid):
    """Settings on top of a tiny valid config; when it validates, every sweep run is built."""

    def step():
        raw = _deep_copy(_BASE)
        for key, value in settings_:
            _set_path(raw, key.split("."), value, key)
        config = C.from_dict(C.apply_overrides(raw, sets), name="fuzz")
        for _, run in C.expand_sweep(config, grid)[:2]:
            build(run, cache=_CACHE)

    _only_fnlearn_errors(step)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_TOML_PIECES, max_size=25).map("".join) | st.text(max_size=40), st.lists(_OVERRIDE, max_size=2)
)
def test_junk_toml_and_overrides_raise_only_fnlearn_errors(text, sets):
    _only_fnlearn_errors(lambda: C.expand_sweep(C.loads(text, sets)))
    for override in sets:
        _only_fnlearn_errors(lambda o=override: C.parse_override(o))


@settings(max_examples=80, deadline=None)
@given(_JUNK)
def test_junk_top_level_raises_only_fnlearn_errors(raw):
    _only_fnlearn_errors(lambda: C.from_dict(raw))
