"""Example building in examples/s, tokenization included, on the fixtures replicated to >= 5,000 trajectories.

The baseline is the plain pipeline in the same run: every example rendered with the chat template
and tokenized whole, one process. `srl-agent data build` counts tokens piece by piece with a cache
(exact, see steps.TokenCounter) and spreads trajectories over processes.
Run: python benchmarks/build_examples.py [--trajectories 5004] [--workers 2] [--smoke]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import FIXTURES, arg_parser, machine

from srl_agent.data import build_steps
from srl_agent.formats import load_trajectories
from srl_agent.steps import ExampleBuilder, StepConfig
from srl_agent.tokenizer import load_tokenizer


def replicate(n: int, path: Path) -> int:
    """Write n canonical trajectories (the fixtures, repeated with new ids); returns the step count."""
    base = list(load_trajectories([str(FIXTURES)]))
    steps = 0
    with path.open("w") as f:
        for i in range(n):
            traj = base[i % len(base)]
            row = traj.to_dict()
            row["id"] = f"{traj.id}#{i}"
            f.write(json.dumps(row) + "\n")
            steps += len(traj.steps)
    return steps


def plain_rate(sample: int) -> float:
    """examples/s of render-then-tokenize-everything, one process, on `sample` trajectories."""
    base = list(load_trajectories([str(FIXTURES)]))
    builder = ExampleBuilder(StepConfig(), load_tokenizer())
    builder.counter.exact_only = True  # the plain way: tokenize every rendered prompt whole
    start, made = time.perf_counter(), 0
    for i in range(sample):
        made += len(builder.build(base[i % len(base)]))
    return made / (time.perf_counter() - start)


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--trajectories", type=int, default=5004)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.smoke:  # the fixtures twice over
        args.trajectories, args.workers = 18, 2
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "trajectories.jsonl"
        steps = replicate(args.trajectories, src)
        size = src.stat().st_size / 1e6
        print(f"{args.trajectories} trajectories, {steps} steps, {size:.0f} MB of canonical JSONL")
        base = plain_rate(args.trajectories if args.smoke else 300)
        print(f"\n{'':50} {'examples/s':>11} {'vs plain':>9}")
        print(f"{'plain: render + tokenize each prompt, 1 process':50} {base:11,.0f} {1:8.1f}x")
        for workers in sorted({1, args.workers}):
            start = time.perf_counter()
            report = build_steps([str(src)], Path(tmp) / "steps.jsonl", StepConfig(), workers=workers)
            rate = report.examples / (time.perf_counter() - start)
            label = f"srl-agent data build, {workers} process{'es' if workers > 1 else ''} (end to end)"
            print(f"{label:50} {rate:11,.0f} {rate / base:8.1f}x")
            assert report.examples == steps


if __name__ == "__main__":
    sys.exit(main())
