"""The ``fnlearn`` subcommands, one module each: ``add_parser(subcommands)`` and ``run(args) -> int``."""
