"""The comparison notebooks in experiments/notebooks/ run as Jupyter runs them, with SMALL=1."""

import json

import numpy as np
import pytest
from experiment_loader import EXPERIMENTS  # tests/ is on sys.path

NOTEBOOKS = EXPERIMENTS / "notebooks"


# Each runs once, as Jupyter runs it (jupytext reads the percent file, nbclient executes
# it in an ipykernel), with SMALL=1. A cell appended for the test (not saved to the file) writes the
# values the tests below check to OUT/probe.json.

PROBES = {
    "compare_runs": """
import json
json.dump({"runs": [{"optimizer": r.config["optimizer"]["name"], "test_accuracy": r.summary["test"]["accuracy"]} for r in runs],
           "groups": len(groups), "rows": rows}, open(OUT / "probe.json", "w"), default=float)
""",
    "replicas_seeds": """
import json
json.dump({"seeds": seeds, "SEEDS": SEEDS, "EPOCHS": EPOCHS,
           "val_accuracy": curve("val_accuracy", LEARNING_RATES[1])[1].tolist()}, open(OUT / "probe.json", "w"))
""",
}


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """``notebook(name) -> (executed notebook, probe values, OUT)``, executing each notebook once."""
    import jupytext
    import nbclient
    import nbformat

    done = {}

    def execute(name):
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            nb = jupytext.read(NOTEBOOKS / f"{name}.py")
            nb.cells.append(nbformat.v4.new_code_cell(PROBES[name]))
            with pytest.MonkeyPatch.context() as env:  # the kernel inherits this process's environment
                env.setenv("SMALL", "1")
                env.setenv("OUT", str(out))
                env.delenv("RUNS", raising=False)
                nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
            done[name] = nb, json.loads((out / "probe.json").read_text()), out
        return done[name]

    return execute


@pytest.mark.xdist_group("notebooks")  # one worker executes each notebook once for all three
def test_notebooks_execute_through_jupytext_and_nbclient(notebook):
    for name in ("compare_runs", "replicas_seeds"):
        nb, _, out = notebook(name)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert len(code) >= 4 and [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
        assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
        assert any(out.glob("*.png")), name


@pytest.mark.xdist_group("notebooks")  # one worker executes each notebook once for all three
def test_compare_runs_notebook(notebook):
    _, ns, out = notebook("compare_runs")
    assert len(ns["runs"]) == 4 and ns["groups"] == 2
    table = (out / "compare.md").read_text()
    assert "optimizer.name=adam" in table and "optimizer.name=sgd" in table and "test_accuracy" in table
    for row in ns["rows"]:  # two seeds per group: mean ± std with a std
        assert row["seeds"] == 2 and row["test_accuracy"][1] is not None
    # the table's test accuracy is the mean of the runs' summary.json values
    adam = [r["test_accuracy"] for r in ns["runs"] if r["optimizer"] == "adam"]
    row = next(r for r in ns["rows"] if "adam" in r["run"])
    assert len(adam) == 2 and row["test_accuracy"][0] == pytest.approx(np.mean(adam))
    assert (out / "learning_curves.png").stat().st_size > 5_000


@pytest.mark.xdist_group("notebooks")  # one worker executes each notebook once for all three
def test_replicas_seeds_notebook(notebook):
    _, ns, out = notebook("replicas_seeds")
    assert len(ns["seeds"]) == 2 * ns["SEEDS"]
    values = np.asarray(ns["val_accuracy"])
    assert values.shape == (ns["SEEDS"], ns["EPOCHS"])
    assert np.all((values > 0) & (values <= 1))
    assert (out / "replicas_seeds.png").stat().st_size > 5_000
