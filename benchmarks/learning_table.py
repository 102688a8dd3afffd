"""The learning table (issue 12): does SRL beat simply continuing SFT for as many update steps?

Per seed: the default config's 400-step SFT warm-up (lr 5e-3), then each arm continues from its
final checkpoint for the same number of update steps at lr 1e-3 (fresh optimizer each):

    sft        60 more SFT steps
    srl        60 SRL (GRPO) steps
    srl-rlvr   the srl arm's step-40 checkpoint, then 20 RLVR steps
    rlvr       60 RLVR steps (--rlvr-steps N: N instead)

Nothing a number is reported on was trained on: the warm-up and every arm train on the seed tasks and
swe-mini's `train` split only (envs/swe-mini/splits.json); the held-out step reward is the greedy SRL
reward on every step of the expert runs of swe-mini's `test` tasks (other repositories), scored every
20 steps. With --resolve G, each arm's final model also plays G episodes (temperature 1) per test task
in sandboxes, scored by the tests (rlvr/episodes.py): the held-out resolve rate.

RLVR arms train turn by turn in the context shape SFT, SRL and eval use (`episodes.context: step`, the last 2
steps); `--rlvr-context episode` trains them on whole episodes with the whole history in the prompt instead (runs
of their own, `ARM-episode`).

Long (about 20 min per seed on 2 cores): every run resumes, and finished arm/seed pairs are skipped.
Writes OUT/results.json and OUT/table.md (default OUT: runs/learning-table).
Run: nice -n 10 python benchmarks/learning_table.py --seeds 0 1 2 [--arms sft srl] [--resolve 4]
         [--rlvr-context episode]
     python benchmarks/learning_table.py --smoke   # one seed: 1 warm-up step, 1 step of each of sft, srl, rlvr
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine, output_dir, write_report

from srl_agent.formats import load_trajectories
from srl_agent.jsonio import atomic_writer, write_jsonl
from srl_agent.metrics import read_metrics
from srl_agent.paths import project_dir
from srl_agent.rlvr.tasks import split_trajectories
from srl_agent.train.checkpoint import step_dir
from srl_agent.train.config import TrainConfig
from srl_agent.train.data import load_examples, training_rendering

WARMUP_STEPS, ARM_LR, EVAL_EVERY = 400, 1e-3, 20


# RLVR arms: 4 episodes of one train task per step, 4 turns each (CPU time). No train task resolves from these
# starts, so the reward's format penalty (0.1 per malformed answer) is what their groups differ by. RLVR at
# lr 1e-3 broke the model within 10 steps where 3e-4 learned (README, "RLVR learns"): 3e-4, ramped over 3 steps.
RLVR_SETTINGS = {"episodes.workers": 2, "episodes.group_size": 4,
                 "episodes.max_turns": 4, "rlvr.batch_size": 1, "grpo.max_sample_rounds": 2,
                 "rlvr_reward.format_penalty": 0.1, "rlvr.lr": 3e-4, "optim.lr_warmup_steps": 3}
WHOLE_EPISODES = {"episodes.context": "episode", "rendering.history": "full"}
"""--rlvr-context episode: what the RLVR arms set besides."""


@dataclass(frozen=True)
class Scale:
    """How long the runs are: the table's, or a smoke run's."""

    warmup_steps: int = WARMUP_STEPS
    eval_every: int = EVAL_EVERY
    arm_steps: int | None = None
    """Every arm this many steps instead of its own."""
    held_out: int | None = None
    """Score on the first this many held-out steps only."""
    settings: dict = dataclasses.field(default_factory=dict)
    """Config fields set on every run, after the arm's."""


SMOKE_SCALE = Scale(warmup_steps=1, eval_every=1, arm_steps=1, held_out=2,
                    settings={**SMOKE_TRAIN_SETTINGS, "episodes.group_size": 2, "episodes.max_turns": 1,
                              "episodes.max_new_tokens": 8})
SMOKE_ARMS = ["sft", "srl", "rlvr"]  # srl-rlvr starts from srl's step 40


@dataclass
class Arm:
    method: str
    steps: int
    init: str
    """`warmup`, or `ARM@STEP`: that arm's checkpoint at that step (same seed)."""
    about: str
    settings: dict = dataclasses.field(default_factory=dict)
    """Config fields the arm sets."""


ARMS = {
    "sft": Arm("sft", 60, "warmup", "SFT alone"),
    "srl": Arm("srl", 60, "warmup", "SFT -> SRL"),
    "srl-rlvr": Arm("rlvr", 20, "srl@40", "SFT -> SRL (40) -> RLVR (20)", RLVR_SETTINGS),
    "rlvr": Arm("rlvr", 60, "warmup", "SFT -> RLVR", RLVR_SETTINGS),
}


def write_data(out: Path) -> tuple[Path, Path]:
    """The shipped trajectories cut by swe-mini's split: train (seed tasks + train tasks) and test."""
    trajectories = list(load_trajectories([str(project_dir("trajectories"))]))
    paths = out / "data" / "train.jsonl", out / "data" / "test.jsonl"
    for side, path in zip(("train", "test"), paths, strict=True):
        write_jsonl(path, [t.to_dict() for t in split_trajectories(trajectories, side)])
    return paths


def run_config(out: Path, seed: int, name: str, train_data: Path, rlvr_steps: int | None = None,
               scale: Scale = Scale(), rlvr_context: str = "step") -> TrainConfig:
    cfg = TrainConfig.builtin()
    cfg.data.trajectories, cfg.seed, cfg.output_dir = [str(train_data)], seed, str(out / f"seed{seed}" / name)
    cfg.validation.trajectories = 0  # validation is the test split, set on the trainer
    cfg.sft_warmup.steps, cfg.validation.every, cfg.checkpointing.every = 0, scale.eval_every, scale.eval_every
    if name == "warmup":
        cfg.method, cfg.optim.lr, cfg.max_steps = "sft", cfg.sft_warmup.lr, scale.warmup_steps
        cfg.validation.every, cfg.checkpointing.every = scale.warmup_steps, 100
    else:
        arm = ARMS[name]
        cfg.method, cfg.optim.lr, cfg.max_steps = arm.method, ARM_LR, scale.arm_steps or arm.steps
        if name == "rlvr" and rlvr_steps:
            cfg.max_steps = rlvr_steps
        start = "warmup" if arm.init == "warmup" else arm.init.split("@")[0]
        at = scale.warmup_steps if arm.init == "warmup" else int(arm.init.split("@")[1])
        cfg.init_from = str(step_dir(out / f"seed{seed}" / start, at))
        for key, value in arm.settings.items():
            cfg.set(key, value)
        if arm.method == "rlvr" and rlvr_context == "episode":  # another shape: runs of its own
            cfg.output_dir += "-episode"
            for key, value in WHOLE_EPISODES.items():
                cfg.set(key, value)
    for key, value in scale.settings.items():
        cfg.set(key, value)
    return cfg


def train(cfg: TrainConfig, test_data: Path, held_out_limit: int | None = None) -> dict:
    """One run (resumed if it has a checkpoint), validated on every step of the test split's expert runs."""
    from srl_agent.train.trainer import Trainer

    run_dir = Path(cfg.output_dir)
    done = run_dir / "done.json"
    if done.exists() and json.loads(done.read_text()).get("steps", cfg.max_steps) == cfg.max_steps:
        return json.loads(done.read_text())
    if cfg.init_from and not Path(cfg.init_from).is_dir():
        sys.exit(f"{cfg.init_from} is missing: run its arm first")
    begin = time.perf_counter()
    resume = (run_dir / "latest").exists()  # a run killed before its first checkpoint starts over
    trainer = Trainer(cfg, resume=resume, overwrite=not resume, log=lambda m: None)
    # every arm is scored on the same prompts: rendered as the default config renders them (an RLVR arm on whole
    # episodes trains with the whole history in its prompts)
    scored_as = cfg.updated({"data.trajectories": [str(test_data)],
                             "rendering.history": TrainConfig.builtin().rendering.history})
    held_out = load_examples(scored_as, trainer.tokenizer, training_rendering(scored_as, trainer.tokenizer,
                                                                              lambda m: None))[:held_out_limit]
    trainer.val_examples = held_out
    print(f"  {run_dir}: {cfg.method} from step {trainer.step} to {cfg.max_steps}, {len(trainer.train_examples)} "
          f"training steps, {len(held_out)} held-out steps", flush=True)

    def show(row: dict) -> None:
        if "val_reward" in row:
            print(f"    step {row['step']}: held-out reward {row['val_reward']:+.3f} "
                  f"(format {row['val_format_ok']:.2f}), {time.perf_counter() - begin:.0f} s", flush=True)

    trainer.run(show)
    rows = [r for r in read_metrics(run_dir) if "val_reward" in r]
    result = {"steps": cfg.max_steps, "curve": {str(r["step"]): r["val_reward"] for r in rows},
              "format": {str(r["step"]): r["val_format_ok"] for r in rows},
              "held_out_steps": len(held_out),
              "train_seconds": sum(r.get("seconds", 0.0) for r in read_metrics(run_dir)),
              "wall_seconds_this_call": time.perf_counter() - begin}
    with atomic_writer(done) as f:
        json.dump(result, f, indent=2)
    return result


def resolve_rate(checkpoint: Path, group: int, workers: int) -> dict:
    """G episodes (temperature 1) per test task with the checkpoint, scored by the tests in the sandbox."""
    from rlvr_reach import load_policy, play

    from srl_agent.rlvr.tasks import swe_mini_split

    policy, rendering = load_policy(checkpoint)
    return play(policy, rendering, swe_mini_split("test"), group, seed=0, workers=workers)


def summarise(results: dict, arms: list[str]) -> tuple[dict, str]:
    """Mean ± spread (sample std) over seeds of the held-out reward at each step, per arm."""
    table, lines = {}, []
    start = [r["warmup"]["curve"][str(r["warmup"]["steps"])] for r in results.values() if "warmup" in r]
    for arm in arms:
        # curves keyed by update steps since the warm-up: an arm that starts from another arm's step N is shifted by N
        shift = int(ARMS[arm].init.split("@")[1]) if "@" in ARMS[arm].init else 0
        runs = [{**r[arm], **{key: {str(int(s) + shift): v for s, v in r[arm][key].items()}
                              for key in ("curve", "format")}} for r in results.values() if arm in r]
        if not runs:
            continue
        steps = sorted({int(s) for run in runs for s in run["curve"]})
        row = {"seeds": len(runs), "about": ARMS[arm].about}
        for s in steps:
            values = [run["curve"][str(s)] for run in runs if str(s) in run["curve"]]
            row[f"reward@{s}"] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        end = str(max(steps))
        row["format@end"] = statistics.mean(run["format"][end] for run in runs)
        # a malformed answer scores -1, a well-formed one its similarity in [0, 1]: what the score is made of
        similarities = [(run["curve"][end] + 1 - run["format"][end]) / run["format"][end]
                        for run in runs if run["format"][end]]
        row["similarity_when_well_formed@end"] = statistics.mean(similarities) if similarities else None
        row["train_seconds"] = statistics.mean(run["train_seconds"] for run in runs)
        resolves = [run["resolve"] for run in runs if "resolve" in run]
        if resolves:
            row["resolved"] = f"{sum(x['resolved'] for x in resolves)}/{sum(x['episodes'] for x in resolves)}"
        table[arm] = row
    steps = sorted({int(k.split("@")[1]) for row in table.values() for k in row if k.startswith("reward@")})
    lines.append("| arm | seeds | " + " | ".join(f"step {s}" for s in steps) +
                 " | format (end) | similarity when well-formed (end) | resolved | s/run |")
    lines.append("|---|---|" + "---|" * len(steps) + "---|---|---|---|")
    for row in table.values():
        cells = [f"{row[f'reward@{s}'][0]:+.3f} ± {row[f'reward@{s}'][1]:.3f}" if f"reward@{s}" in row else "-"
                 for s in steps]
        similarity = row["similarity_when_well_formed@end"]
        lines.append(f"| {row['about']} | {row['seeds']} | " + " | ".join(cells) +
                     f" | {row['format@end']:.2f} | {'-' if similarity is None else f'{similarity:.2f}'} | "
                     f"{row.get('resolved', '-')} | {row['train_seconds']:.0f} |")
    if start:
        lines.append(f"\nStep 0 is the end of the warm-up: held-out reward {statistics.mean(start):+.3f} "
                     f"(over {len(start)} seeds). Spread: sample standard deviation over seeds.")
    return table, "\n".join(lines)


def main() -> None:
    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["sft", "srl"], choices=list(ARMS))
    parser.add_argument("--out", help="default runs/learning-table; with --smoke a temp dir")
    parser.add_argument("--resolve", type=int, default=0, metavar="G",
                        help="also play G episodes per test task with each arm's final model (sandboxes)")
    parser.add_argument("--workers", type=int, default=2, help="--resolve: sandboxes at once")
    parser.add_argument("--results", help="also copy results.json here (e.g. benchmarks/learning_table.json)")
    parser.add_argument("--rlvr-steps", type=int, help="RLVR arms: this many steps instead of the table's (a "
                                                       "smoke run)")
    parser.add_argument("--rlvr-context", choices=["step", "episode"], default="step",
                        help="RLVR arms: each turn in SFT's context shape (step), or whole episodes")
    args = parser.parse_args()
    scale = Scale()
    if args.smoke:  # the pipeline end to end at the smallest size: its numbers mean nothing
        scale, args.seeds, args.arms = SMOKE_SCALE, [0], SMOKE_ARMS
    with output_dir(args.out, args.smoke, "runs/learning-table") as folder:
        out = Path(folder)
        train_data, test_data = write_data(out)
        results: dict[str, dict] = {}
        for seed in args.seeds:
            print(f"seed {seed}", flush=True)
            results[str(seed)] = {"warmup": train(run_config(out, seed, "warmup", train_data, scale=scale), test_data,
                                                  scale.held_out)}
            for arm in args.arms:
                cfg = run_config(out, seed, arm, train_data, args.rlvr_steps, scale, args.rlvr_context)
                result = train(cfg, test_data, scale.held_out)
                if args.resolve and "resolve" not in result:
                    result["resolve"] = resolve_rate(step_dir(Path(cfg.output_dir), cfg.max_steps), args.resolve,
                                                     args.workers)
                    with atomic_writer(Path(cfg.output_dir) / "done.json") as f:
                        json.dump(result, f, indent=2)
                results[str(seed)][arm] = result
        table, markdown = summarise(results, args.arms)
        report = {"machine": machine(), "setup": {"warmup_steps": scale.warmup_steps, "arm_lr": ARM_LR,
                                                  "rlvr_context": args.rlvr_context,
                                                  "arms": {a: dataclasses.asdict(ARMS[a]) for a in args.arms}},
                  "table": table, "runs": results}
        write_report(out, report, markdown, args.results)
    print(markdown)


if __name__ == "__main__":
    main()
