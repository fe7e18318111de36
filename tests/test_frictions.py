"""The small frictions of issue 16, each checked: a CSV's task from its labels, data paths from the
config's folder, hints that ignore case and name a key's section, TOML errors with a line and
column, the Ctrl-C hint with the real run path."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnlearn import cli
from fnlearn import config as C
from fnlearn.data import load
from fnlearn.data.files import FEW_CLASSES, infer_task
from fnlearn.errors import FnlearnError, did_you_mean


def column(values):
    return [[str(v)] for v in values]


@pytest.mark.parametrize(
    "values, task",
    [
        (["cat", "dog", "cat", "dog"], "classification"),  # text
        ([0, 1, 2, 0, 1, 2, 0, 1], "classification"),  # few whole numbers
        (["1.0", "2.0", "1.0", "2.0"], "classification"),  # whole numbers written as floats
        ([0.5, 1.5, 0.5, 1.5], "regression"),  # not whole
        (list(range(100)), "regression"),  # whole, but as many values as rows
        ([i % (FEW_CLASSES + 1) for i in range(200)], "regression"),  # more than FEW_CLASSES
        ([i % FEW_CLASSES for i in range(200)], "classification"),
    ],
)
def test_the_task_follows_the_target_column(values, task):
    assert infer_task(column(values)) == task


def test_several_target_columns_are_regression():
    assert infer_task([["1", "2"], ["3", "4"]]) == "regression"


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=30))
def test_non_whole_numbers_are_never_classes(values):
    cells = column(values)
    if any(v != round(v) for v in values):
        assert infer_task(cells) == "regression"


def test_a_csv_without_task_loads_text_labels_as_classes(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("a,b,kind\n1,2,dog\n3,4,cat\n5,6,dog\n7,8,cat\n")
    ds = load("csv", path=str(file), target="kind")
    assert ds.task == "classification" and ds.num_classes == 2
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])  # ids in sorted order: cat 0, dog 1
    reg = load("csv", path=str(file), target="b", features=["a"])  # 4 distinct of 4 rows
    assert reg.task == "regression" and reg.y.shape == (4, 1)


def test_a_relative_data_path_is_taken_from_the_configs_folder(tmp_path, monkeypatch):
    (tmp_path / "configs" / "data").mkdir(parents=True)
    (tmp_path / "configs" / "x.toml").write_text(
        '[data]\nname = "csv"\ntest = 0.0\noptions = {path = "data/t.csv", target = "y"}\n'
        'test_options = {path = "/abs/t.csv"}\n'
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = C.load("../configs/x.toml")
    assert config.data.options["path"] == str(tmp_path / "configs" / "data" / "t.csv")
    assert config.data.test_options["path"] == "/abs/t.csv"  # absolute: as it is
    given_here = C.load("../configs/x.toml", ["data.options.path='mine.csv'"])
    assert given_here.data.options["path"] == "mine.csv"  # --set: from the working directory
    kept = C.load("../configs/x.toml", paths_from=tmp_path / "elsewhere")
    assert kept.data.options["path"] == str(tmp_path / "elsewhere" / "data" / "t.csv")


def test_name_hints_ignore_case():
    assert did_you_mean("Relu", ["elu", "relu", "selu"]) == " Did you mean 'relu'?"
    assert did_you_mean("ADAM", ["adam", "adamw"]) == " Did you mean 'adam'?"
    with pytest.raises(FnlearnError, match="Did you mean 'relu'"):
        C.loads('[model]\nactivation = "Relu"\n')


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            "[training]\nlearning_rate = 0.1\n",
            "training.learning_rate: unknown key. This key belongs in [optimizer].",
        ),
        ("[optimizer]\nepochs = 3\n", "optimizer.epochs: unknown key. This key belongs in [training]."),
        ("[model]\npatience = 3\n", "This key belongs in [training.early_stopping]."),
        ("[training]\nepochz = 3\n", "training.epochz: unknown key. Did you mean 'epochs'?"),
    ],
)
def test_a_key_of_another_section_says_where_it_belongs(text, needle):
    with pytest.raises(FnlearnError) as error:
        C.loads(text)
    assert needle in str(error.value)


def test_a_toml_syntax_error_names_the_line_and_column():
    with pytest.raises(FnlearnError, match=r"not valid TOML at line 3, column \d+"):
        C.loads('[model]\nsizes = [64]\nactivation = relu"\n')


def test_ctrl_c_names_the_real_run_path(tmp_path, monkeypatch, capsys):
    from fnlearn.runs import execute

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my configs").mkdir()
    (tmp_path / "my configs" / "s.toml").write_text("[training]\nepochs = 1\n")

    def interrupted(out_arg, default, plans_for, *, claimed, **kwargs):
        claimed(default.parent / "a run")
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "run_command", interrupted)
    assert cli.main(["sweep", "my configs/s.toml"]) == 130
    err = capsys.readouterr().err
    assert err == (
        "fnlearn: error: interrupted; `fnlearn sweep --resume --out 'runs/a run' 'my configs/s.toml'` "
        "continues from the last checkpoint.\n"
    )
