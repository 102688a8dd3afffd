"""Does RLVR learn? The resolve rate of a tiny model's episodes, before and during RLVR, over seeds.

The task: swe-mini's `pocketlib-4` (`percent` multiplies by 10 instead of 100). The warm start imitates three
expert runs that disagree on the fix: the short expert run (view, one `str_replace`, submit) and twice a
misled copy whose edit writes `* 1000` instead of `* 100` (in the call and in the observation that echoes
it). The runs are the same answers up to one token, so after SFT (every step on all 9 of their steps, so the model
learns the 1:2 mixture, not the last batches' draw) the model mostly makes the wrong fix, and imitation
cannot tell which is right; only the tests can. RLVR (the trainer's `--method rlvr`, episodes in
sandboxes, reward 1 when the tests pass) should move the model to the fix that resolves.

Per seed, through the CLI as a user runs it:

    srl-agent train --method sft  --trajectories experts.jsonl --max-steps 200 (lr 5e-3, batch 9)
    srl-agent train --method rlvr --init-from <SFT step 200> --tasks pocketlib-4.jsonl --max-steps STEPS
        G = 8 episodes, 1 task per step, temperature 0.6, rlvr_lr 3e-4 ramped over 3 steps, 4 turns

`--context step` (the default) trains RLVR turn by turn on the prompts SFT and eval render (the last 2 steps);
`--context episode` on whole episodes, SFT and RLVR both with the whole history in the prompt (`episodes.context`,
rlvr/episodes.py).

Every RLVR step logs the resolve rate of all the episodes it played (metrics.jsonl, `rlvr_resolve_rate`):
step 1's episodes are the SFT model's. Writes OUT/results.json (default runs/rlvr-rise).
With --async-steps K the RLVR steps sample their episodes up to K steps ahead of the update (grpo.async_steps):
the rise must hold with stale episodes too.
Run: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/rlvr_rise.py --seeds 0 1 2 [--steps 6] [--async-steps 1]
         [--context episode] [--results FILE]
     python benchmarks/rlvr_rise.py --smoke   # one seed: 2 SFT steps, 2 RLVR steps of 2 one-turn episodes
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import arg_parser, machine, output_dir

from srl_agent.jsonio import atomic_writer, read_jsonl, write_jsonl
from srl_agent.metrics import read_metrics
from srl_agent.paths import project_dir

TASK, RIGHT, WRONG = "swemini__pocketlib-4", "* 100\n", "* 1000\n"
SFT_STEPS = 200
RLVR_SETTINGS = {"sft_warmup.steps": 0, "validation.trajectories": 0, "rlvr.lr": 3e-4,
                 "optim.lr_warmup_steps": 3, "rlvr.batch_size": 1, "grpo.max_sample_rounds": 2,
                 "episodes.group_size": 8, "episodes.temperature": 0.6, "episodes.max_turns": 4,
                 "episodes.max_new_tokens": 192}
CONTEXTS = {"step": {}, "episode": {"rendering.history": "full"}}
"""Per RLVR context shape (`episodes.context`), the rendering of both runs, SFT and RLVR."""
SMOKE_SFT_STEPS, SMOKE_RLVR_STEPS = 2, 2
SMOKE_RLVR_SETTINGS = {**RLVR_SETTINGS, "episodes.group_size": 2, "episodes.max_turns": 1,
                       "episodes.max_new_tokens": 8}


def write_inputs(out: Path) -> tuple[Path, Path]:
    """The expert runs (one right, two misled) and the task's instance, as files the CLI reads."""
    swe_mini = project_dir("envs") / "swe-mini"
    right = next(r for _, r in read_jsonl(swe_mini / "pocketlib-short.jsonl") if r["id"] == TASK)
    edit = next(i for i, s in enumerate(right["steps"]) if s["action"]["arguments"].get("command") == "str_replace")
    wrong = copy.deepcopy(right)
    wrong["steps"][edit]["action"]["arguments"]["new_str"] = right["steps"][edit]["action"]["arguments"][
        "new_str"].replace(RIGHT, WRONG)
    wrong["steps"][edit]["observation"] = right["steps"][edit]["observation"].replace(RIGHT, WRONG, 1)
    instances = [instance for _, instance in read_jsonl(swe_mini / "instances.jsonl")]
    experts, tasks = out / "experts.jsonl", out / "pocketlib-4.jsonl"
    write_jsonl(experts, [right, *({**wrong, "id": f"{TASK}-misled-{k}"} for k in (1, 2))])
    write_jsonl(tasks, [i for i in instances if i["instance_id"] == TASK])
    return experts, tasks


def train(args: list[str], log: Path) -> None:
    """One `srl-agent train` run, its output in `log`."""
    with log.open("w") as f:
        done = subprocess.run([sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", *args], stdout=f,
                              stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        sys.exit(f"srl-agent train failed (exit {done.returncode}); see {log}")


def rlvr_run(out: Path, seed: int) -> Path:
    """The run folder of a seed's RLVR steps."""
    return out / f"rlvr-s{seed}"


def run_seed(out: Path, seed: int, steps: int, sft_steps: int = SFT_STEPS, settings: dict = RLVR_SETTINGS,
             context: str = "step") -> list[float]:
    """SFT on the expert runs, then `steps` RLVR steps in `context`; the resolve rate of each RLVR step's episodes."""
    experts, tasks = write_inputs(out)
    rendering = CONTEXTS[context]
    # the SFT run is reused when there: one per rendering
    sft, rlvr = out / (f"sft-s{seed}" if context == "step" else f"sft-{context}-s{seed}"), rlvr_run(out, seed)
    if not (sft / "checkpoints" / f"step-{sft_steps:06d}").is_dir():
        train(["--method", "sft", "--trajectories", str(experts), "--max-steps", str(sft_steps), "--seed", str(seed),
               "--set", "optim.lr=5e-3", "--set", "batch_size=9",
               *[arg for key, value in rendering.items() for arg in ("--set", f"{key}={value}")],
               "--set", "validation.trajectories=0", "--no-plot",
               "--overwrite", "--output-dir", str(sft)], out / f"{sft.name}.log")
    settings = {**settings, **rendering, "episodes.context": context}
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    train(["--method", "rlvr", "--init-from", str(sft / "checkpoints" / f"step-{sft_steps:06d}"), "--tasks", str(tasks),
           "--trajectories", str(experts), "--max-steps", str(steps), "--seed", str(seed), "--workers", "2",
           *sets, "--overwrite", "--output-dir", str(rlvr)], out / f"rlvr-s{seed}.log")
    return [row["rlvr_resolve_rate"] for row in read_metrics(rlvr) if "rlvr_resolve_rate" in row]


def rise(rates: list[float]) -> float:
    """Mean resolve rate of the last 3 RLVR steps minus that of the first 2 (8-episode steps are noisy; step 1's
    episodes are the SFT model's)."""
    return statistics.mean(rates[-3:]) - statistics.mean(rates[:2])


def main() -> None:
    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=6, help="RLVR steps per seed")
    parser.add_argument("--out", help="default runs/rlvr-rise; with --smoke a temp dir")
    parser.add_argument("--results", help="also copy results.json here (e.g. benchmarks/rlvr_rise.json)")
    parser.add_argument("--async-steps", type=int, default=0, help="grpo.async_steps of the RLVR runs (default 0)")
    parser.add_argument("--context", choices=sorted(CONTEXTS), default="step",
                        help="what RLVR trains on: each turn, in SFT's context shape (step), or whole episodes")
    args = parser.parse_args()
    sft_steps, settings = SFT_STEPS, RLVR_SETTINGS
    if args.smoke:  # the pipeline end to end at the smallest size; the rise of 2 steps means nothing
        args.seeds, args.steps, sft_steps, settings = [0], SMOKE_RLVR_STEPS, SMOKE_SFT_STEPS, SMOKE_RLVR_SETTINGS
    elif args.steps < 5:
        parser.error("--steps must be at least 5 (the rise compares the first 2 steps with the last 3)")
    if args.async_steps:
        settings = {**settings, "grpo.async_steps": args.async_steps}
    with output_dir(args.out, args.smoke, "runs/rlvr-rise") as folder:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        runs = {}
        for seed in args.seeds:
            rates = run_seed(out, seed, args.steps, sft_steps, settings, args.context)
            if len(rates) != args.steps:
                sys.exit(f"seed {seed}: {len(rates)} RLVR steps logged a resolve rate, expected {args.steps}")
            staleness = [row["staleness_max"] for row in read_metrics(rlvr_run(out, seed)) if "staleness_max" in row]
            runs[str(seed)] = {"resolve_rate_per_step": rates, "rise": rise(rates),
                               **({"staleness_max_per_step": staleness} if args.async_steps else {})}
            print(f"seed {seed}: resolve rate per RLVR step {' '.join(f'{r:.2f}' for r in rates)}; "
                  f"rise (last 3 - first 2) {rise(rates):+.2f}", flush=True)
        rises = [r["rise"] for r in runs.values()]
        report = {"machine": machine(), "context": args.context, "sft_steps": sft_steps,
                  "async_steps": args.async_steps, "rlvr_steps": args.steps,
                  "settings": {**settings, **CONTEXTS[args.context]}, "runs": runs,
                  "rise_mean": statistics.mean(rises), "rise_min": min(rises)}
        for path in [out / "results.json", *([Path(args.results)] if args.results else [])]:
            with atomic_writer(path) as f:
                json.dump(report, f, indent=2)
    print(f"rise over {len(rises)} seeds: mean {report['rise_mean']:+.2f}, smallest {report['rise_min']:+.2f}")


if __name__ == "__main__":
    main()
