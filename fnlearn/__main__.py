"""``python -m fnlearn ...`` is the ``fnlearn`` command."""

from fnlearn.cli import run

if __name__ == "__main__":
    run()
