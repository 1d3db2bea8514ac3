"""The ``dftplug`` command line: one module per command, composed here.

Every command is quiet unless ``-v`` is given, offers ``--json`` where a script reads the result,
and exits with code 2 and a one-line message (naming the file and the problem) on bad input.
The command modules import numpy, torch, sisl, matplotlib, ... inside their commands, so that
``dftplug --help`` and each command load only what that command uses.
"""
from __future__ import annotations

import functools
import json
import os
import sys

import click

from dftplug import __version__
from dftplug.errors import DftplugError


def reports_errors(func):
    """Turn a DftplugError into 'dftplug: error: ...' on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DftplugError as exc:
            click.echo(f"dftplug: error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=float))


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Use ``n`` CPU threads for BLAS/OpenMP and torch. The BLAS variables take effect when numpy and
    torch are first imported, so a command calls this before it imports them; torch is set directly
    when it is already loaded."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dftplug")
def main():
    """Learn ΔH = H − H0 for ABACUS, OpenMX and SIESTA, and give the result back to the codes."""


def _register():
    from . import bands, convert, eval, infer, sample, train  # noqa: F401  (each module adds its commands)


_register()
