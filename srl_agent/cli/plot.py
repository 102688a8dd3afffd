"""`srl-agent plot`: a training run's curves as PNG (the work: srl_agent.plot)."""

from __future__ import annotations

import argparse

from .common import console


def add_parser(sub) -> None:
    plot = sub.add_parser("plot", help="write a run's training curves as PNG")
    plot.add_argument("run_dir")
    plot.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    plot.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from ..plot import plot_run

    console.print(f"wrote {plot_run(args.run_dir, args.out)}")
    return 0
