"""The outcome table (issue 22): does an agent trained only by srl-agent's own commands resolve tasks from
packages it never trained on, and which method gets it there?

On a task folder that `srl-agent tasks build` made (its split/train and split/test sides; `--tasks swe-mini`:
swe-mini's split), per seed:

    warmup     SFT from scratch with the recipe (--recipe, default configs/outcome-cpu.yaml) for --warmup-steps
    sft        the warm-up, then --arm-steps more SFT steps
    srl        the warm-up, then --arm-steps SRL steps
    srl-rlvr   the srl arm's checkpoint at half its steps, then RLVR for the other half
    rlvr       the warm-up, then --arm-steps RLVR steps on split/train's tasks

Every arm makes the same number of update steps after the warm-up; its `train_seconds` (the trainer's own step
times) is in the table beside it, for the comparison at equal wall time. Scores of each final checkpoint:

    held-out resolved   `srl-agent eval` on every split/test task: temperature 0, --max-steps turns, graded by
                        the tests in hardened sandboxes (the command a user runs)
    train resolved      the same on --train-sample of split/train's tasks (a fixed seeded sample): what it was shown
    step reward         the greedy SRL reward on every step of split/test's expert runs (as the learning table)

Long: every training run and every eval resumes, and finished ones are skipped (`done.json`, the eval's own
`--run-id`). Writes OUT/results.json and OUT/table.md (default OUT: runs/outcome-table).
Run: nice -n 10 python benchmarks/outcome_table.py --tasks tasks/pypi-16 --seeds 0 1 2 [--arms sft srl]
     python benchmarks/outcome_table.py --smoke   # swe-mini, one seed: warm-up and srl 1 step each, 2 held-out tasks
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine, output_dir, write_report
from learning_table import train

from srl_agent.formats import load_trajectories
from srl_agent.jsonio import atomic_writer, read_jsonl, write_jsonl
from srl_agent.paths import project_dir
from srl_agent.train.checkpoint import step_dir
from srl_agent.train.config import PretrainConfig, TrainConfig

RECIPE = project_dir("configs") / "outcome-cpu.yaml"


@dataclass(frozen=True)
class Arm:
    method: str
    start: str
    """`warmup`, or `srl@half`: the srl arm's checkpoint at half the arm steps."""
    about: str


ARMS = {
    "sft": Arm("sft", "warmup", "SFT"),
    "srl": Arm("srl", "warmup", "SFT -> SRL"),
    "srl-rlvr": Arm("rlvr", "srl@half", "SFT -> SRL -> RLVR"),
    "rlvr": Arm("rlvr", "warmup", "SFT -> RLVR"),
}


@dataclass(frozen=True)
class Sides:
    """The task folder's two sides: instances (with images) and the expert's runs of them."""

    train_instances: Path
    train_trajectories: Path
    test_instances: Path
    test_trajectories: Path


def task_sides(tasks: str, out: Path) -> Sides:
    """`tasks build`'s split folders, or swe-mini's split written out the same way; a missing side is one line."""
    if tasks == "swe-mini":
        from srl_agent.rlvr.tasks import split_trajectories, swe_mini_split

        runs = list(load_trajectories([str(project_dir("trajectories"))]))
        for side in ("train", "test"):
            write_jsonl(out / "data" / side / "instances.jsonl", swe_mini_split(side))
            write_jsonl(out / "data" / side / "trajectories.jsonl",
                        [t.to_dict() for t in split_trajectories(runs, side)])
        folder = out / "data"
    else:
        folder = Path(tasks) / "split"
    sides = Sides(*(folder / side / name for side in ("train", "test")
                    for name in ("instances.jsonl", "trajectories.jsonl")))
    missing = [p for p in vars(sides).values() if not p.is_file()]
    if missing:
        sys.exit(f"{missing[0]}: missing; build the tasks first (srl-agent tasks build CURRICULUM --out {tasks})")
    return sides


def run_config(recipe: Path, out: Path, seed: int, name: str, sides: Sides, warmup_steps: int, arm_steps: int,
               smoke: bool) -> TrainConfig:
    cfg = TrainConfig.from_yaml(recipe)
    cfg.data.trajectories, cfg.seed = [str(sides.train_trajectories)], seed
    cfg.output_dir = str(out / f"seed{seed}" / name)
    cfg.validation.trajectories = 0  # validation is the test side, set on the trainer
    cfg.sft_warmup.steps = 0
    cfg.rlvr.tasks = str(sides.train_instances)
    if name == "warmup":
        cfg.method, cfg.max_steps = "sft", warmup_steps
        cfg.validation.every = cfg.checkpointing.every = warmup_steps
    else:
        arm = ARMS[name]
        half = max(1, arm_steps // 2)
        cfg.method, cfg.max_steps = arm.method, arm_steps - half if arm.start == "srl@half" else arm_steps
        cfg.validation.every = cfg.checkpointing.every = half
        start, at = ("warmup", warmup_steps) if arm.start == "warmup" else ("srl", half)
        cfg.init_from = str(step_dir(out / f"seed{seed}" / start, at))
        cfg.pretrain = PretrainConfig()  # a recipe's pretraining ran in the warm-up, whose weights the arm starts from
    if smoke:
        for key, value in SMOKE_TRAIN_SETTINGS.items():
            cfg.set(key, value)
        cfg.set("episodes.group_size", 2)
        cfg.set("episodes.max_turns", 1)
    return cfg


def train_sample(instances: Path, size: int) -> list[str]:
    """A fixed sample of the training side's task ids (seed 0, sorted ids): the same tasks for every arm."""
    ids = sorted(row["instance_id"] for _, row in read_jsonl(instances))
    return sorted(random.Random(0).sample(ids, min(size, len(ids))))


def resolve(checkpoint: Path, bench: Path, instance_ids: list[str] | None, run_dir: Path, max_steps: int,
            max_new_tokens: int, workers: int) -> dict:
    """`srl-agent eval` of the checkpoint at temperature 0 (resumed under the same run id); its summary."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        command = [sys.executable, "-m", "srl_agent.cli", "eval", "--bench", str(bench), "--model", str(checkpoint),
                   "--temperature", "0", "--max-steps", str(max_steps), "--max-new-tokens", str(max_new_tokens),
                   "--workers", str(workers),
                   "--output-dir", str(run_dir.parent), "--run-id", run_dir.name]
        if instance_ids:
            command += ["--instances", *instance_ids]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    row = json.loads(summary.read_text())
    return {"resolved": row["resolved"], "total": row["instances"], "ids": row["resolved_ids"],
            "empty_patches": row["empty_patches"], "mean_steps": row["mean_steps"]}


def score(result: dict, cfg: TrainConfig, sides: Sides, sample: list[str], args) -> dict:
    """The run's result with its resolve rates added (and kept in its done.json)."""
    run_dir = Path(cfg.output_dir)
    checkpoint = step_dir(run_dir, cfg.max_steps)
    limit = None if not args.smoke else 2
    held_out = [row["instance_id"] for _, row in read_jsonl(sides.test_instances)][:limit]
    if "heldout" not in result:
        result["heldout"] = resolve(checkpoint, sides.test_instances, held_out, run_dir / "eval" / "heldout",
                                    args.max_steps, cfg.rollout.max_new_tokens, args.workers)
    if "train" not in result:
        result["train"] = resolve(checkpoint, sides.train_instances, sample, run_dir / "eval" / "train",
                                  args.max_steps, cfg.rollout.max_new_tokens, args.workers)
    with atomic_writer(run_dir / "done.json") as f:
        json.dump(result, f, indent=2)
    return result


def mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _rate(row: dict, side: str) -> str:
    """`mean ± spread % (counts per seed)` of a table row's resolve rate on one side."""
    mean, spread = row[f"{side}_resolved"]
    return f"{100 * mean:.1f} ± {100 * spread:.1f} % ({', '.join(row[f'{side}_counts'])})"


def summarise(results: dict[str, dict], names: list[str]) -> tuple[dict, str]:
    """Per run name: mean ± spread over seeds of the resolve rates, the step reward and the train seconds."""
    table = {}
    for name in names:
        runs = [r[name] for r in results.values() if name in r]
        if not runs:
            continue
        end = [run["curve"][str(run["steps"])] for run in runs]
        table[name] = {
            "about": "SFT warm-up" if name == "warmup" else ARMS[name].about, "seeds": len(runs),
            "heldout_resolved": mean_spread([r["heldout"]["resolved"] / r["heldout"]["total"] for r in runs]),
            "heldout_counts": [f"{r['heldout']['resolved']}/{r['heldout']['total']}" for r in runs],
            "train_resolved": mean_spread([r["train"]["resolved"] / r["train"]["total"] for r in runs]),
            "train_counts": [f"{r['train']['resolved']}/{r['train']['total']}" for r in runs],
            "heldout_step_reward": mean_spread(end),
            "train_seconds": mean_spread([r["train_seconds"] for r in runs]),
        }
    lines = ["| run | seeds | held-out resolved | train resolved | held-out step reward | train s |",
             "|---|---|---|---|---|---|"]
    for row in table.values():
        lines.append(f"| {row['about']} | {row['seeds']} | {_rate(row, 'heldout')} | {_rate(row, 'train')} | "
                     f"{row['heldout_step_reward'][0]:+.3f} ± {row['heldout_step_reward'][1]:.3f} | "
                     f"{row['train_seconds'][0]:.0f} |")
    lines.append("\nSpread: sample standard deviation over seeds. Resolved: temperature 0, graded by the tests.")
    return table, "\n".join(lines)


def main() -> None:
    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="swe-mini", help="a `tasks build` folder (its split/), or swe-mini")
    parser.add_argument("--recipe", default=str(RECIPE), help="the training config every run starts from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["sft", "srl"], choices=list(ARMS))
    parser.add_argument("--warmup-steps", type=int, default=1500)
    parser.add_argument("--arm-steps", type=int, default=100)
    parser.add_argument("--train-sample", type=int, default=20, help="training tasks the resolve rate is taken on")
    parser.add_argument("--max-steps", type=int, default=12, help="tool calls per eval episode")
    parser.add_argument("--workers", type=int, default=2, help="eval: sandboxes at once")
    parser.add_argument("--out", help="default runs/outcome-table; with --smoke a temp dir")
    parser.add_argument("--results", help="also copy results.json here (e.g. benchmarks/outcome_table.json)")
    args = parser.parse_args()
    if args.smoke:  # the pipeline end to end at the smallest size: its numbers mean nothing
        args.tasks, args.seeds, args.arms = "swe-mini", [0], ["srl"]
        args.warmup_steps, args.arm_steps, args.train_sample, args.max_steps = 1, 1, 1, 2
    if "srl-rlvr" in args.arms and "srl" not in args.arms:
        args.arms.insert(args.arms.index("srl-rlvr"), "srl")  # it starts from the srl arm's checkpoint
    with output_dir(args.out, args.smoke, "runs/outcome-table") as folder:
        out = Path(folder)
        sides = task_sides(args.tasks, out)
        sample = train_sample(sides.train_instances, args.train_sample)
        held_out_steps = 2 if args.smoke else None
        results: dict[str, dict] = {}
        for seed in args.seeds:
            print(f"seed {seed}", flush=True)
            results[str(seed)] = {}
            for name in ["warmup", *args.arms]:
                cfg = run_config(Path(args.recipe), out, seed, name, sides, args.warmup_steps, args.arm_steps,
                                 args.smoke)
                result = score(train(cfg, sides.test_trajectories, held_out_steps), cfg, sides, sample, args)
                print(f"  {name}: held-out {result['heldout']['resolved']}/{result['heldout']['total']}, train "
                      f"{result['train']['resolved']}/{result['train']['total']} resolved", flush=True)
                results[str(seed)][name] = result
        table, markdown = summarise(results, ["warmup", *args.arms])
        report = {"machine": machine(), "tasks": args.tasks, "recipe": Path(args.recipe).read_text(),
                  "setup": {"warmup_steps": args.warmup_steps, "arm_steps": args.arm_steps,
                            "max_steps": args.max_steps, "train_sample": sample},
                  "table": table, "runs": results}
        write_report(out, report, markdown, args.results)
    print(markdown)


if __name__ == "__main__":
    main()
