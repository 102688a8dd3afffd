"""The GPU benchmark script (benchmarks/gpu_srl_step.py), run as a device run would run it but with `--smoke`:
the tiny model on CPU, each side in its own process, the results and the log written to `--out`. Its numbers
mean nothing on CPU; what is checked is that every part runs and reports (a device run has no second try)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_script_runs_every_part_and_writes_its_results(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_srl_step.py"), "--smoke", "--no-trl",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["rollout"]) == {"dynamic", "static"}
    assert min(r["tokens_per_s"] for r in results["rollout"].values()) > 0
    # with sdpa (no flash-attention) the layouts are padded and shared_prefix; checkpointing drops the shared KV cache
    assert set(results["layouts"]) == {"padded", "padded + checkpointing", "shared_prefix"}
    assert results["ours"]["backend"] in ("hf", "hf_static") and results["ours"]["examples_per_s"] > 0
    assert results["ours"]["planned_memory_gib"] > 0  # the --dry-run plan, beside the measured peak on a card
    log = (tmp_path / "log.txt").read_text()
    assert "generation alone: dynamic cache" in log and "update alone, padded" in log
