"""Shared helpers for the benchmark scripts: the fixture location, a machine description, and the command line
every script shares (`--smoke`)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trajectories"

SMOKE_HELP = ("CI check (tests/test_benchmarks_smoke.py): tiny sizes, seconds, output under a temp dir; it checks "
              "that the script runs and reports, its numbers measure nothing")

# The trainer at smoke size: a step samples 2 prompts x G 2 of 8 tokens and updates every group (dynamic sampling
# would drop the flat groups of a model that has not learned the format, and with them the update).
SMOKE_TRAIN_SETTINGS = {"batch_size": 2, "grpo.group_size": 2, "rollout.max_new_tokens": 8, "validation.examples": 2,
                        "grpo.dynamic_sampling": False}


def arg_parser(description: str | None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with the flag every benchmark takes: `--smoke`."""
    parser = argparse.ArgumentParser(description=description, **kwargs)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    return parser


def output_dir(out: str | None, smoke: bool, default: str | None = None) -> AbstractContextManager[str]:
    """Where a script writes: `out` if given; in smoke mode a temp dir removed afterwards (a smoke run never
    overwrites a real run's or a committed result); else `default`."""
    if out or not smoke:
        return nullcontext(out or default)
    return tempfile.TemporaryDirectory(prefix="srl-bench-smoke-")


def write_report(out: Path, report: dict, markdown: str, copy: str | None = None) -> None:
    """A table script's OUT/results.json (and the same at `copy`, e.g. a committed benchmarks/*.json) and
    OUT/table.md, each written atomically."""
    from srl_agent.jsonio import atomic_writer

    for path in [out / "results.json", *([Path(copy)] if copy else [])]:
        with atomic_writer(path) as f:
            json.dump(report, f, indent=2)
    with atomic_writer(out / "table.md") as f:
        f.write(markdown + "\n")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def best_of(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` wall-clock timings of fn(), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
