"""The commands' persistent compilation cache (fnlearn.compile_cache): where it lives, the switches
that turn it off, an unwritable folder, jax's settings restored after a command, and the settings
a run logs. No test writes to the real ~/.cache: every folder here is under tmp_path, and the
session's own cache (tests/conftest.py) is what the other tests' commands use."""

import argparse
import json
import os
from pathlib import Path

import jax
import pytest
from test_cli import SMALL  # tests/ is on sys.path; the same run, so one of the two compiles it

from fnlearn import cli, compile_cache
from fnlearn.errors import FnlearnWarning


def test_the_session_cache_is_what_commands_in_tests_use():
    """conftest exports JAX_COMPILATION_CACHE_DIR: an explicit folder wins over the default."""
    choice = compile_cache.choose()
    assert choice.enabled and choice.directory == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert choice.reason == "JAX_COMPILATION_CACHE_DIR"


def test_the_default_folder_follows_xdg(tmp_path):
    home = Path.home()
    assert compile_cache.default_directory({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "fnlearn" / "jax"
    assert compile_cache.default_directory({}) == home / ".cache" / "fnlearn" / "jax"
    # XDG: a relative path is to be ignored, as if unset
    assert compile_cache.default_directory({"XDG_CACHE_HOME": "rel"}) == home / ".cache" / "fnlearn" / "jax"


def test_the_default_folder_is_made_for_its_owner_only(tmp_path):
    choice = compile_cache.choose(environ={"XDG_CACHE_HOME": str(tmp_path)})
    folder = tmp_path / "fnlearn" / "jax"
    assert choice == compile_cache.CacheChoice(True, str(folder), "fnlearn's default (XDG cache folder)")
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700 and not list(folder.iterdir())


@pytest.mark.parametrize(
    "enabled, environ, reason",
    [
        (False, {}, "turned off by --no-compile-cache"),
        (True, {"FNLEARN_COMPILE_CACHE": "0"}, "turned off by FNLEARN_COMPILE_CACHE=0"),
        (True, {"FNLEARN_COMPILE_CACHE": "off"}, "turned off by FNLEARN_COMPILE_CACHE=off"),
    ],
)
def test_the_switches_turn_it_off_and_make_nothing(tmp_path, enabled, environ, reason):
    environ = environ | {"XDG_CACHE_HOME": str(tmp_path), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "x")}
    assert compile_cache.choose(enabled, environ) == compile_cache.CacheChoice(False, None, reason)
    assert not list(tmp_path.iterdir())


def test_the_option_is_on_every_command_that_compiles_and_off_by_flag():
    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    having = {name for name, sub in commands.items() if "--no-compile-cache" in sub._option_string_actions}
    assert having == set(cli.COMPILING) == {"train", "sweep", "predict", "sample", "lr-find"}
    assert parser.parse_args(["train", "x"]).compile_cache is True
    assert parser.parse_args(["train", "x", "--no-compile-cache"]).compile_cache is False


def test_configured_caches_in_its_folder_and_restores_jax_after(tmp_path):
    """Inside the block a new program lands in $XDG_CACHE_HOME/fnlearn/jax (every program: no
    minimum compile time); afterwards jax's settings, and the session's cache, are back."""
    before = {name: getattr(jax.config, name) for name in compile_cache._OPTIONS}
    folder = tmp_path / "fnlearn" / "jax"
    with compile_cache.configured(environ={"XDG_CACHE_HOME": str(tmp_path)}) as choice:
        assert jax.config.jax_compilation_cache_dir == choice.directory == str(folder)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
        jax.jit(lambda x: x * 3.0 + 17.0)(1.0).block_until_ready()  # a program no other test makes
        assert compile_cache.settings()["cache"] == {
            "enabled": True,
            "directory": str(folder),
            "min_compile_time_s": 0.0,
        }
    assert [p.name.startswith("jit_") and p.name.endswith("-cache") for p in folder.iterdir()] == [True]
    with compile_cache.configured(enabled=False):
        assert not jax.config.jax_enable_compilation_cache
        assert not compile_cache.settings()["cache"]["enabled"]
    assert {name: getattr(jax.config, name) for name in compile_cache._OPTIONS} == before
    jax.jit(lambda x: x * 5.0 - 19.0)(1.0).block_until_ready()
    assert len(list(folder.iterdir())) == 1  # the session's cache again, not this folder


def test_a_run_logs_its_compilation_settings(tmp_path, monkeypatch):
    """summary.json's ``compilation``: versions, backend, devices, XLA_FLAGS and the cache used (here
    the session's, as every command in the tests)."""
    monkeypatch.chdir(tmp_path)
    Path("small.toml").write_text(SMALL)
    assert cli.main(["train", "small.toml", "--out", "run", "--quiet"]) == 0
    logged = json.loads(Path("run/summary.json").read_text())["compilation"]
    assert logged["cache"]["enabled"] is True
    assert logged["cache"]["directory"] == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert logged["jax"] == jax.__version__ and logged["backend"] == jax.default_backend()
    assert logged["devices"] == [str(d) for d in jax.devices()]
    assert logged["xla_flags"] == os.environ.get("XLA_FLAGS", "")


def test_an_unwritable_folder_is_one_warning_and_jax_compiles_without_it(tmp_path, monkeypatch, capsys):
    """A file where the cache folder should be: one warning line from the command (here one that
    then stops at its missing config: the line comes before anything else), and inside
    ``configured`` the cache is off and programs compile as usual."""
    monkeypatch.chdir(tmp_path)
    Path("blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "blocked" / "jax"))
    assert cli.main(["train", "missing.toml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("fnlearn: warning: compilation cache ")
    assert (
        "blocked/jax: Not a directory; running without it" in err[0] and "JAX_COMPILATION_CACHE_DIR" in err[0]
    )
    assert err[1].startswith("fnlearn: error: ") and "missing.toml" in err[1]
    with pytest.warns(FnlearnWarning, match="running without it"), compile_cache.configured() as choice:
        assert not choice.enabled and not jax.config.jax_enable_compilation_cache
        assert float(jax.jit(lambda x: x * 7.0 + 23.0)(1.0)) == 30.0
        assert compile_cache.settings()["cache"]["enabled"] is False
    assert jax.config.jax_enable_compilation_cache  # on again for the rest of the session
