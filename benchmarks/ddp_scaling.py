"""Two DDP processes (gloo, torchrun) against one process on the tiny default, same global batch.

Both take SRL steps with the built-in config (batch 4 prompts, G = 8): one process samples and
updates all 4 prompts, two processes 2 each and sync gradients through accelerate's DDP. With
--init-from (an SFT-warmed checkpoint, e.g. runs/srl-tiny/checkpoints/step-000400 of the main job)
the steps are the real ones; without it both start from the random tiny model with dynamic sampling
off, a fixed workload (a random model never stops early: every completion is 128 tokens, every group
is updated). Every process runs one thread (OMP_NUM_THREADS=1, torchrun's
default), so the comparison is one core against two. Reported: mean seconds per step (first step
excluded) and the speed-up.
Run: python benchmarks/ddp_scaling.py [--init-from CHECKPOINT] [--steps 6] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine


def worker(init_from: str | None, steps: int, out: str, smoke: bool) -> None:
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.trainer import Trainer

    base = TrainConfig.builtin()
    cfg = base.updated({"sft_warmup.steps": 0, "init_from": init_from, "output_dir": out,
                        "validation.trajectories": 0, "grpo.dynamic_sampling": init_from is not None,
                        **(SMOKE_TRAIN_SETTINGS if smoke else {})})
    trainer = Trainer(cfg, log=lambda _: None)
    rows = [trainer.train_step() for _ in range(steps)]
    if trainer.main:
        Path(out, "steps.json").write_text(json.dumps(rows))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()  # a gloo group left to the interpreter's exit can abort the process


def run(processes: int, init_from: str | None, steps: int, smoke: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), __file__,
                   "--worker", "--steps", str(steps), "--out", tmp, *(["--init-from", init_from] if init_from else []),
                   *(["--smoke"] if smoke else [])]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per process, as torchrun sets it
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the {processes}-process run failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(Path(tmp, "steps.json").read_text())


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--init-from")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.init_from, args.steps, args.out, args.smoke)
        return
    if args.smoke:
        args.steps = 2  # the first step is not timed
    print(f"machine: {machine()}")
    seconds = {}
    for processes in (1, 2):
        rows = run(processes, args.init_from, args.steps, args.smoke)[1:]
        seconds[processes] = sum(r["seconds"] for r in rows) / len(rows)
        update = sum(r["time_update"] for r in rows) / len(rows)
        generate = sum(r["time_generate"] for r in rows) / len(rows)
        fill = sum(r["fill_ratio"] for r in rows) / len(rows)
        print(f"{processes} process(es): {seconds[processes]:.2f} s/step (generate {generate:.2f}, "
              f"update {update:.2f}, fill {fill:.2f})")
    print(f"speed-up of 2 processes over 1: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
