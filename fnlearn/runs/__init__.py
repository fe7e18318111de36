"""Where a config becomes a run: the run directory on disk (``rundir``), the runs a command
makes (``execute``), and a run directory back in memory (``load``, in ``loading``). The command
line calls these; nothing below them imports them."""

__all__ = ["load", "Loaded"]


def __getattr__(name: str):
    if name in __all__:  # lazily: ``fnlearn.runs.build`` must not pay for jax
        from fnlearn.runs import loading  # noqa: PLC0415

        return getattr(loading, name)
    raise AttributeError(f"module 'fnlearn.runs' has no attribute {name!r}")
