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
    speeds = {cache: r.get("tokens_per_s", 0) for cache, r in results["rollout"].items()}
    assert set(speeds) == {"dynamic", "static", "paged"} and min(speeds.values()) > 0, results["rollout"]
    # with sdpa (no flash-attention) the layouts are padded and shared_prefix; checkpointing drops the shared KV cache
    assert set(results["layouts"]) == {"padded", "padded + checkpointing", "shared_prefix"}
    # auto: ours samples with the fastest of the caches measured
    assert results["ours"]["backend"] == {"dynamic": "hf", "static": "hf_static", "paged": "hf_paged"}[
        max(speeds, key=speeds.get)] and results["ours"]["examples_per_s"] > 0
    assert results["ours"]["planned_memory_gib"] > 0  # the --dry-run plan, beside the measured peak on a card
    fsdp2 = results["fsdp2"]  # our step again, under accelerate launch with the FSDP2 config and one process
    assert fsdp2["engine"] == "FSDP2" and fsdp2["steps"] >= 1 and fsdp2["examples_per_s"] > 0
    assert fsdp2["planned_memory_gib"] > 0
    log = (tmp_path / "log.txt").read_text()
    assert "generation alone: dynamic cache" in log and "update alone, padded" in log


def test_the_gpu_script_keeps_to_its_time_budget(tmp_path):
    """A budget too small for every side: the first sides run, the rest are skipped with the reason, and what was
    measured is in results.json (a device run's time is fixed and cannot be extended)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_srl_step.py"), "--smoke", "--no-trl",
                           "--budget-s", "30", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["rollout"]["dynamic"]["tokens_per_s"] > 0  # the first side had its share
    assert "under 20 s of the 30 s budget left" in results["fsdp2"]["skipped"]
    assert "fsdp2: skipped" in (tmp_path / "log.txt").read_text()
