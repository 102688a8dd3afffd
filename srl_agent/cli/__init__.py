"""The `srl-agent` command line: argument parsing and printing only; the work is in the library."""

# One module per command: `srl-agent X ...` is cli/X.py, whose `add_parser(sub)` adds its options and sets
# `handler`, the function that runs it; common.py holds the consoles, log printer and progress bars they share.

from __future__ import annotations

import argparse
import signal
import sys

from rich.markup import escape

from .. import __version__
from ..errors import UserError
from . import data, env, plot, probe, replay, reward, serve, tasks, train
from . import eval as eval_command
from .common import console

COMMANDS = (data, reward, replay, train, probe, serve, plot, env, tasks, eval_command)  # in `srl-agent --help` order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srl-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"srl-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A plain `kill` ends the run like Ctrl-C does: sandboxes are closed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return args.handler(args)
    except UserError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
