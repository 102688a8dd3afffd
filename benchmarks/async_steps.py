"""Rollouts that overlap the update (`grpo.async_steps`, issue 21): SRL steps per hour with async_steps 1 against 0,
and the learning curve of both, on the default run (README command 1: configs/tiny.yaml, 400 SFT warm-up steps,
then 60 SRL steps, the held-out reward scored every 20 steps).

Per seed, through the CLI as a user runs it: the warm-up once (`srl-agent train --env swe --max-steps 400`, whose
step-400 checkpoint is what the full run has there), then its 60 SRL steps twice, each resumed from a copy of it,
with async_steps 0 and 1, one after the other on the same machine:

    srl-agent train --env swe --seed S --max-steps 460 --resume --set grpo.async_steps=K

With --warmup-seed W, one warm-up (seed W) serves every seed: each arm starts from its step-400 checkpoint with a
fresh optimizer (`--init-from`, as learning_table.py's arms), `--max-steps 60`. Cheaper, but a seed other than W
holds out other trajectories than W's warm-up did, which it may have trained on (both arms alike).

SRL steps/hour: 3600 / the mean SRL step's seconds (`seconds` in metrics.jsonl: the step's wall time, which with
async_steps 1 is the wait for its rollouts plus its update; validation and checkpoints, the same in both, are left
out). Learning: the held-out reward every 20 SRL steps. Staleness must not cost learning: the async arm's final
held-out reward lies within the lock-step seeds' spread.
Writes OUT/results.json (default runs/async-steps).
Run: nice -n 10 python benchmarks/async_steps.py --seeds 0 1 2 [--jobs 3] [--warmup-seed 0] [--srl-steps 60]
         [--warmup-steps 400] [--results benchmarks/async_steps.json]
     python benchmarks/async_steps.py --smoke   # one seed: 1 warm-up step, 2 SRL steps per arm
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine, output_dir

from srl_agent.jsonio import atomic_writer
from srl_agent.metrics import read_metrics

WARMUP_STEPS, SRL_STEPS = 400, 60
ARMS = (0, 1)  # grpo.async_steps
SMOKE_WARMUP_STEPS, SMOKE_SRL_STEPS = 1, 2
SMOKE_SETTINGS = {**SMOKE_TRAIN_SETTINGS, "sft_warmup.steps": SMOKE_WARMUP_STEPS, "validation.every": 1}


def train(args: list[str], settings: dict, log: Path) -> float:
    """One `srl-agent train --env swe` run, its output in `log`; its wall-clock seconds."""
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    start = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run([sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", "--no-plot", *args,
                               *sets], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"srl-agent train failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def warm_up(out: Path, seed: int, warmup: int, settings: dict) -> Path:
    """The default run's first `warmup` (SFT) steps at `seed`, unless its checkpoint is there: its run folder."""
    warm = out / f"warm-s{seed}"
    if not (warm / "checkpoints" / f"step-{warmup:06d}").is_dir():
        train(["--seed", str(seed), "--max-steps", str(warmup), "--overwrite", "--output-dir", str(warm)], settings,
              out / f"warm-s{seed}.log")
    return warm


def run_arm(warm: Path, run: Path, seed: int, async_steps: int, warmup: int, srl_steps: int, settings: dict,
            resume: bool) -> dict:
    """The SRL steps after the warm-up: resumed from a copy of the warm-up's run folder, or (not `resume`) started
    from its checkpoint."""
    shutil.rmtree(run, ignore_errors=True)
    if resume:
        shutil.copytree(warm, run)
        start = ["--resume", "--max-steps", str(warmup + srl_steps)]
    else:
        start = ["--init-from", str(warm / "checkpoints" / f"step-{warmup:06d}"), "--max-steps", str(srl_steps)]
    wall = train(["--seed", str(seed), *start, "--output-dir", str(run)], {**settings, "grpo.async_steps": async_steps},
                 run.with_suffix(".log"))
    rows = read_metrics(run)
    srl = [r for r in rows if r.get("phase") == "srl"]
    held_out = [(r["step"], r["val_reward"]) for r in rows if "val_reward" in r and r["step"] >= srl[0]["step"] - 1]
    step_s = statistics.mean(r["seconds"] for r in srl)
    return {"srl_steps": len(srl), "srl_step_s": step_s, "srl_steps_per_hour": 3600 / step_s, "wall_s": wall,
            **{f"time_{k}": statistics.mean(r.get(f"time_{k}", 0.0) for r in srl)
               for k in ("generate", "reward", "update", "wait")},
            "staleness_mean": statistics.mean(r.get("staleness_mean", 0.0) for r in srl),
            "staleness_max": max(r.get("staleness_max", 0) for r in srl),
            "reward_mean_per_step": [r["reward_mean"] for r in srl], "held_out": held_out,
            "held_out_end": held_out[-1][1]}


def run_seed(out: Path, seed: int, warmup: int, srl_steps: int, settings: dict,
             warmup_seed: int | None) -> dict[str, dict]:
    """Both arms of `seed`, one after the other (the same machine state), after its own warm-up or `warmup_seed`'s."""
    warm = warm_up(out, seed if warmup_seed is None else warmup_seed, warmup, settings)
    runs = {}
    for k in ARMS:
        result = runs[f"async{k}-s{seed}"] = run_arm(warm, out / f"async{k}-s{seed}", seed, k, warmup, srl_steps,
                                                     settings, resume=warmup_seed is None)
        print(f"seed {seed} async_steps {k}: {result['srl_steps_per_hour']:.0f} SRL steps/h "
              f"({result['srl_step_s']:.2f} s/step: generate {result['time_generate']:.2f}, update "
              f"{result['time_update']:.2f}, wait {result['time_wait']:.2f}), staleness mean "
              f"{result['staleness_mean']:.2f} max {result['staleness_max']}; held-out reward "
              + " ".join(f"{s}:{v:.3f}" for s, v in result["held_out"]), flush=True)
    return runs


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", help="default runs/async-steps; with --smoke a temp dir")
    parser.add_argument("--results", help="also copy results.json here (e.g. benchmarks/async_steps.json)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (each seed's arms one after the other)")
    parser.add_argument("--warmup-seed", type=int, help="one warm-up, at this seed, for every seed (see above)")
    parser.add_argument("--srl-steps", type=int, default=SRL_STEPS)
    parser.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS, help="SFT steps before SRL (the default "
                        "run's: 400)")
    args = parser.parse_args()
    warmup, srl_steps, settings = args.warmup_steps, args.srl_steps, {}
    if args.smoke:
        args.seeds, warmup, srl_steps, settings = [0], SMOKE_WARMUP_STEPS, SMOKE_SRL_STEPS, SMOKE_SETTINGS
    print(f"machine: {machine()}", flush=True)
    with output_dir(args.out, args.smoke, "runs/async-steps") as folder:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        if args.warmup_seed is not None:  # before the seeds that share it start
            warm_up(out, args.warmup_seed, warmup, settings)
        with ThreadPoolExecutor(args.jobs) as pool:  # each seed's runs are subprocesses: threads only wait
            per_seed = pool.map(lambda seed: run_seed(out, seed, warmup, srl_steps, settings, args.warmup_seed),
                                args.seeds)
            runs = {name: result for seed_runs in per_seed for name, result in seed_runs.items()}
        ratios = [runs[f"async1-s{s}"]["srl_steps_per_hour"] / runs[f"async0-s{s}"]["srl_steps_per_hour"]
                  for s in args.seeds]
        ends = {k: [runs[f"async{k}-s{s}"]["held_out_end"] for s in args.seeds] for k in ARMS}
        lock_step = spread(ends[0])
        report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "seeds": args.seeds, "jobs": args.jobs,
                  "warmup_steps": warmup, "warmup_seed": args.warmup_seed, "srl_steps": srl_steps,
                  "settings": settings, "runs": runs,
                  "steps_per_hour_ratio": {"per_seed": ratios, **spread(ratios)},
                  "held_out_end": {f"async{k}": spread(v) for k, v in ends.items()},
                  "async_within_lock_step_spread": lock_step["min"] <= statistics.mean(ends[1]) <= lock_step["max"]}
        for path in [out / "results.json", *([Path(args.results)] if args.results else [])]:
            with atomic_writer(path) as f:
                json.dump(report, f, indent=2)
    print(f"SRL steps/hour, async_steps 1 / 0: {' '.join(f'{r:.2f}' for r in ratios)} (mean "
          f"{statistics.mean(ratios):.2f}); held-out reward at the end: lock step "
          f"{lock_step['mean']:.3f} [{lock_step['min']:.3f}, {lock_step['max']:.3f}], async_steps 1 "
          f"{statistics.mean(ends[1]):.3f} [{min(ends[1]):.3f}, {max(ends[1]):.3f}]")


if __name__ == "__main__":
    main()
