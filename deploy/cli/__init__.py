"""The ``mlgate`` command line: one module per command group, ``main`` builds the parser."""

from deploy.cli.main import main

__all__ = ["main"]
