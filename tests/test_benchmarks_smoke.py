"""Every benchmark script runs in smoke mode (`--smoke`: tiny sizes, seconds, output under a temp dir), so that a
benchmark that no longer runs fails CI rather than its next reader. The scripts are found by globbing: a new one
without `--smoke` fails here. The GPU script (gpu_*) has its own smoke test, tests/test_gpu_script.py. Those that
need sandboxes use CI's Docker and its `swe` and swe-mini images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("*.py")
                 if path.name != "_common.py" and not path.name.startswith("gpu_"))


def committed_results() -> dict[str, int]:
    """benchmarks/*.json, the measured results, by modification time."""
    return {path.name: path.stat().st_mtime_ns for path in BENCHMARKS.glob("*.json")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_runs_in_smoke_mode(script):
    before = committed_results()
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], cwd=BENCHMARKS.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert committed_results() == before, "a smoke run overwrote a committed result"
