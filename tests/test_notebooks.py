"""The comparison notebooks of experiments/notebooks run as notebooks and show what they claim.

Each notebook is executed once, as Jupyter runs it: nbclient starts a real ipykernel in a temporary
folder (not the repository: paths must not depend on where the kernel starts) and runs every cell.
Parameters are injected as papermill does, in a cell right after the one tagged ``parameters``
(``SMALL = True``, ``OUT = <temporary folder>``). The tests read the executed notebook: no error, a
figure shown, and the JSON printed by the cell tagged ``claims``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "experiments" / "notebooks"
NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


def tagged(nb, tag: str) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if tag in cell.metadata.get("tags", [])]


def inject(nb, **parameters):
    """Put the parameters in a new cell after the ``parameters`` cell (papermill's convention)."""
    import nbformat

    (index,) = tagged(nb, "parameters")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """``executed(name) -> (notebook, claims, OUT)``, executing each notebook once per session (a
    module-scoped fixture would run a notebook again when xdist interleaves another module's tests)."""
    import nbclient
    import nbformat

    done = {}

    def execute(name):
        if name not in done:
            out, cwd = tmp_path_factory.mktemp(f"{name}-out"), tmp_path_factory.mktemp(f"{name}-cwd")
            nb = inject(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4), SMALL=True, OUT=str(out))
            client = nbclient.NotebookClient(
                nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
            )
            client.execute()
            (claims,) = tagged(nb, "claims")
            done[name] = nb, json.loads(printed(nb.cells[claims])), out
            assert not any(cwd.iterdir()), f"{name} wrote into the folder it started in"
        return done[name]

    return execute


def test_the_notebooks_are_committed_clean_with_a_parameter_cell_and_a_claims_cell():
    import nbformat

    assert {"optimizers", "initialisers", "heads"} <= set(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert not [cell for cell in code if cell.outputs or cell.execution_count], (
            f"{name}: outputs committed"
        )
        assert len(tagged(nb, "parameters")) == 1 and len(tagged(nb, "claims")) == 1, name
        source = "".join(cell.source for cell in code)
        assert "os.environ" not in source and "getenv" not in source, f"{name} reads the environment"


def _on_one_worker(name: str):
    """The xdist group of one notebook: its run and its claims test on one worker, which executes
    it once (``executed``); different notebooks may run on different workers."""
    return pytest.mark.xdist_group(f"notebook_{name}")


@pytest.mark.parametrize("name", [pytest.param(name, marks=_on_one_worker(name)) for name in NAMES])
def test_the_notebook_runs_in_a_kernel_and_shows_a_figure(executed, name):
    nb, _, out = executed(name)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    shown = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert shown, f"{name} shows no figure"
    assert [path for path in out.glob("*.png") if path.stat().st_size > 5_000], f"{name} saved no figure"


@_on_one_worker("optimizers")
def test_optimizers_notebook_claims(executed):
    _, claims, out = executed("optimizers")
    accuracy = claims["val_accuracy"]
    assert set(accuracy) == {
        "sgd",
        "momentum",
        "nesterov",
        "ema_momentum",
        "adagrad",
        "rmsprop",
        "adam",
        "lion",
    }
    assert min(accuracy.values()) > 0.3  # every optimizer far above chance (0.1)
    # EMA momentum (η = 0.1, β = 0.9) takes exactly heavy-ball's steps (η = 0.01): float32 rounding apart
    assert claims["ema_vs_heavy_ball_relative_gap"] < 1e-4
    # heavy ball at η/(1 − β) = 0.1 ends near plain SGD at η = 0.1
    assert claims["momentum_vs_sgd_relative_gap"] < 0.1
    table = (out / "optimizers.md").read_text()
    assert len(table.splitlines()) == 2 + len(accuracy) and "± " in table


@_on_one_worker("initialisers")
def test_initialisers_notebook_claims(executed):
    _, claims, _ = executed("initialisers")
    ratio, depth = claims["forward_ratio"], claims["depth"]
    assert 1 / 3 < ratio["He"] < 3
    assert 1 / 3 < ratio["LeCun"] / 2.0 ** -(depth - 1) < 3  # halved at every ReLU
    assert ratio["N(0, 0.01²)"] < 1e-6 and ratio["N(0, 1)"] > 1e6
    loss = claims["final_train_loss"]
    assert loss["He"] < 0.5 * loss["N(0, 0.01²)"]
    assert loss["N(0, 0.01²)"] > 0.9 * np.log(10)  # the vanishing signal barely trains


@_on_one_worker("heads")
def test_heads_notebook_claims(executed):
    _, claims, _ = executed("heads")
    mse, learned, t = (claims[f"heteroscedastic / {h}"] for h in ("MSE", "Gaussian σ(x)", "Student-t"))
    assert learned["nll"] < mse["nll"] and learned["local_ece"] < mse["local_ece"]
    mse, learned, t = (claims[f"outliers / {h}"] for h in ("MSE", "Gaussian σ(x)", "Student-t"))
    assert t["rmse_to_truth"] < 0.5 * min(mse["rmse_to_truth"], learned["rmse_to_truth"])
    assert t["nll"] < min(mse["nll"], learned["nll"])
    assert min(mse["ece"], learned["ece"]) > 0.1 > t["ece"]


@_on_one_worker("compare_runs")
def test_compare_runs_notebook_claims(executed):
    _, claims, out = executed("compare_runs")
    assert len(claims["runs"]) == 4 and claims["groups"] == 2
    table = (out / "compare.md").read_text()
    assert "adam" in table and "sgd" in table and "test_accuracy" in table
    for row in claims["rows"]:  # two seeds per group: mean ± std with a std
        assert row["seeds"] == 2 and row["test_accuracy"][1] is not None
    # the table's test accuracy is the mean of the runs' summary.json values
    adam = [r for r in claims["runs"] if r["optimizer"] == "adam"]
    row = next(row for row in claims["rows"] if row["run"] == adam[0]["label"])
    assert len(adam) == 2 and row["test_accuracy"][0] == pytest.approx(
        np.mean([r["test_accuracy"] for r in adam])
    )


@_on_one_worker("replicas_seeds")
def test_replicas_seeds_notebook_claims(executed):
    _, claims, _ = executed("replicas_seeds")
    assert len(claims["seeds"]) == 2 * claims["SEEDS"]
    assert claims["records"] == len(claims["seeds"]) * claims["EPOCHS"]
    values = np.asarray(claims["val_accuracy"])
    assert values.shape == (claims["SEEDS"], claims["EPOCHS"])
    assert np.all((values > 0) & (values <= 1))
