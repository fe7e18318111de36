"""A finished (or checkpointed) run directory back in memory: ``load(RUN_DIR)``.

The run's ``config.toml`` is built again (data, model, head, optimizer: the same objects the run
trained, with the same split) and its newest checkpoint in ``checkpoints/last`` is restored into
them, every array checked against the checksum it was saved with (with early stopping's
``restore_best``, the best epoch's weights that checkpoint keeps, as the run ended on them). The data standardiser is the
one the run recorded in ``summary.json`` (else the one the rebuilt split gives, which is the same
unless the data file changed), so ``Loaded.predict`` takes inputs in the data's units and
returns regression outputs in them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from fnlearn.errors import FnlearnError

__all__ = ["Loaded", "load"]


class Loaded(NamedTuple):
    """A run restored from its directory: what ``fl.predict`` needs, and where it came from."""

    state: Any  # fnlearn.train.TrainState at the checkpoint's step
    model: Any  # fnlearn.nn.Model
    head: Any  # fnlearn.distributions.Head
    standardizer: Any  # fnlearn.data.Standardizer, or None when the run did not standardise
    config: Any  # fnlearn.config.Config, resolved
    run_dir: Path
    feature_names: tuple | None  # the input columns' names, where the run's data named them
    labels: tuple | None = None  # class id i's text (class names, or a sequence run's vocabulary)

    def predict(self, x, *, kind: str = "mode", key=None, batch_size: int = 512, use_ema: bool = False):
        """``fl.predict`` with this run's head and standardiser: x in the data's units."""
        from fnlearn.prediction import predict  # noqa: PLC0415 - jax loads on first use

        return predict(
            self.state,
            x,
            head=self.head,
            kind=kind,
            key=key,
            batch_size=batch_size,
            use_ema=use_ema,
            standardizer=self.standardizer,
        )


def restore_newest(run_dir: Path, model, optimizer, config) -> tuple:
    """``(state, extra)`` of the newest checkpoint in ``RUN/checkpoints/last``, restored into a state
    of ``model`` and ``optimizer`` (with the moving average ``training.ema`` keeps), checksums
    checked; a run without one is a FnlearnError saying why."""
    import jax  # noqa: PLC0415

    from fnlearn import checkpoint  # noqa: PLC0415
    from fnlearn import ema as fema  # noqa: PLC0415
    from fnlearn.train import TrainState  # noqa: PLC0415

    state = TrainState.create(model, optimizer, jax.random.key(config.training.seeds[0]))
    if config.training.ema:
        state = state.replace(ema=fema.init(state.params, config.training.ema))
    last = run_dir / "checkpoints" / "last"
    if checkpoint.latest_step(last) is None:
        raise FnlearnError(
            f"{run_dir} has no checkpoint to load ({last} holds none): the run wrote none "
            "(training.checkpoint.every = 0) or stopped before its first. Train it with checkpoints."
        )
    return checkpoint.restore(last, state)


def _config(run_dir: Path):
    from fnlearn import config as fconfig  # noqa: PLC0415

    if not run_dir.is_dir():
        raise FnlearnError(f"no run directory at {run_dir}. Pass a folder that `fnlearn train` wrote.")
    path = run_dir / "config.toml"
    if not path.is_file():
        seeds = sorted(p.name for p in run_dir.glob("seed_*") if (p / "config.toml").is_file())
        if seeds:
            raise FnlearnError(
                f"{run_dir} holds one run per seed ({', '.join(seeds)}); load one of them, e.g. {run_dir / seeds[0]}."
            )
        raise FnlearnError(f"{run_dir} is not a run directory: it has no config.toml.")
    try:
        return fconfig.load(path)
    except fconfig.ConfigFileError:
        raise  # its message names the file already
    except FnlearnError as error:
        raise FnlearnError(f"{path}: {error}") from None


def _standardizer(run_dir: Path, built):
    """The standardiser recorded in summary.json, else the rebuilt split's."""
    from fnlearn.data import Standardizer  # noqa: PLC0415
    from fnlearn.runs.resume import read_summary  # noqa: PLC0415

    recorded = (read_summary(run_dir) or {}).get("standardizer")
    if isinstance(recorded, dict):
        try:
            return Standardizer.from_dict(recorded)
        except (TypeError, ValueError):
            raise FnlearnError(
                f"{run_dir / 'summary.json'}: its standardizer entry is damaged (not the fields of "
                "fnlearn.data.Standardizer); restore the file or delete that entry to use the data's."
            ) from None
    return built.standardizer


def _best_weights(state, extra: dict, config):
    """With early stopping's ``restore_best`` a run ends on its best epoch's weights (the ones its
    test metrics are from); its last checkpoint keeps them beside the last epoch's: use those."""
    import jax  # noqa: PLC0415

    es = config.training.early_stopping
    entry = (extra.get("callbacks") or {}).get("EarlyStopping") or {}
    names = (entry.get("arrays") or {}).get("best_weights")
    if not (es.enabled and es.restore_best and names):
        return state
    structure = jax.tree.structure((state.params, state.model_state))
    params, model_state = jax.tree.unflatten(structure, [extra["arrays"][n] for n in names])
    return state.replace(params=params, model_state=model_state)


def load(run_dir) -> Loaded:
    """The state, model, head and standardiser of the run in ``run_dir`` (its newest checkpoint).

    A missing or damaged directory, config or checkpoint is one ``FnlearnError`` naming it.
    """
    from fnlearn.runs.build import build  # noqa: PLC0415

    run_dir = Path(run_dir)
    config = _config(run_dir)
    try:
        built = build(config)
    except FnlearnError as error:
        raise FnlearnError(f"{run_dir / 'config.toml'}: {error}") from None
    state, extra = restore_newest(run_dir, built.model, built.optimizer, config)
    state = _best_weights(state, extra, built.config)
    standardizer = _standardizer(run_dir, built)
    train = built.splits.train
    labels = train.class_names if train.class_names is not None else train.vocab
    return Loaded(
        state, built.model, built.head, standardizer, built.config, run_dir, train.feature_names, labels
    )
