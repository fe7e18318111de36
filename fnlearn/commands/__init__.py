"""The commands of ``fnlearn``: one module each, with ``add_parser(subcommands)`` and ``run(args)``."""
