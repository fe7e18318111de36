"""The ``fnlearn`` subcommands, one module each.

Every module exposes ``add_parser(subcommands) -> None`` (adds its subparser and
``set_defaults(func=run)``) and ``run(args) -> int`` (the exit status; a user mistake raises
``FnlearnError``, which ``fnlearn.cli.main`` prints as one line). ``fnlearn.cli.COMMANDS`` lists
them in the order ``fnlearn --help`` shows. Modules import the training engine, the config
package and the report inside ``run``, so ``fnlearn --help`` stays fast.
"""
