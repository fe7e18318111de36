"""fnlearn.runs.execute: the config of a run to resume, read back from its directory."""

from pathlib import Path

import pytest

from fnlearn.errors import FnlearnError
from fnlearn.runs import execute


def _resume_error(tmp_path: Path, text: str) -> str:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text(text)
    with pytest.raises(FnlearnError) as caught:
        execute.resume_config(tmp_path / "run", [])
    return str(caught.value)


def test_a_config_mistake_in_the_run_is_prefixed_with_its_file(tmp_path):
    path = tmp_path / "run" / "config.toml"
    message = _resume_error(tmp_path, "[optimiser]\nname = 'adam'\n")
    assert message.startswith(f"{path}: optimiser: unknown key. Did you mean 'optimizer'?")


def test_an_unreadable_config_names_its_file_once(tmp_path):
    path = tmp_path / "run" / "config.toml"
    message = _resume_error(tmp_path, "[training\n")
    assert message.startswith(f"config file {str(path)!r} is not valid TOML")
    assert message.count(str(path)) == 1


def test_the_seeds_of_a_multi_seed_folder_come_back_together(tmp_path):
    for seed in (0, 2):
        (tmp_path / f"seed_{seed}").mkdir()
        (tmp_path / f"seed_{seed}" / "config.toml").write_text(f"name = 'x'\n[training]\nseeds = [{seed}]\n")
    config = execute.resume_config(tmp_path, ["training.epochs=3"])
    assert config.training.seeds == (0, 2) and config.training.epochs == 3
