"""Where a config becomes a run: the run directory on disk (``rundir``) and the runs a command
makes (``execute``). The command line calls these; nothing below them imports them."""
