"""The GPU benchmark script (benchmarks/gpu_srl_step.py), run as a device run would run it but with `--smoke`:
the tiny model on CPU, each side in its own process, the results and the log written to `--out`. Its numbers
mean nothing on CPU; what is checked is that every part runs and reports (a device run has no second try)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_srl_step  # noqa: E402  (a script beside its _common.py, not a package)


def test_the_gpu_script_runs_every_part_and_writes_its_results(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_srl_step.py"), "--smoke",
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
    assert results["trl"]["examples_per_s"] > 0 and results["ratio"] > 0  # TRL's GRPOTrainer, side by side
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


def test_a_side_measures_fewer_steps_to_keep_to_its_share():
    assert len(list(gpu_srl_step.measured(3, None))) == 3  # no budget
    assert len(list(gpu_srl_step.measured(3, time.time() + 60))) == 3
    assert len(list(gpu_srl_step.measured(3, time.time() - 1))) == 1  # past its share: one measured step still
    now = time.time()
    assert gpu_srl_step.share_of(now + 90, 3) - now == pytest.approx(30, abs=1)  # the next of 3 parts of 90 s
    assert gpu_srl_step.share_of(now - 5, 2) == pytest.approx(now, abs=1)  # spent already: nothing left to share
    assert gpu_srl_step.share_of(None, 2) is None


SLEEPER = """import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(300)
"""


def test_a_side_past_its_time_is_stopped_with_the_workers_torchrun_started(tmp_path):
    """torchrun (what `accelerate launch` runs for the fsdp2 side) starts its workers in sessions of their own: a
    kill of the launcher's group alone would leave the worker running on the GPU and the script waiting for it."""
    script, pid_file = tmp_path / "sleeper.py", tmp_path / "worker.pid"
    script.write_text(SLEEPER)
    start, lines = time.time(), []
    code, stopped, _ = gpu_srl_step.run_child(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(script), str(pid_file)],
        kill_at=time.time() + 10, say=lines.append)
    assert stopped and code != 0
    assert time.time() - start < 10 + gpu_srl_step.STOP_GRACE_S + 15
    worker = int(pid_file.read_text())
    for _ in range(50):  # the worker ends within moments of its launcher
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the worker {worker} outlived the stopped side")
