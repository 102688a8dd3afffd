"""Which tasks can a model reach? G RLVR episodes per task, scored by the tests.

GRPO learns only from groups whose rewards differ: a task no episode resolves (or every one does)
gives no signal. This plays `--group` episodes per task with a checkpoint, in real sandboxes, exactly
as RLVR does (rlvr/episodes.py, `step` context: each prompt rendered as the checkpoint's rendering record says,
as eval renders it; the test-execution reward of rlvr/reward.py), once per sampling seed, and reports the
resolve rate per task and overall.

Run: nice -n 10 python benchmarks/rlvr_reach.py --model CHECKPOINT [--side train] [--group 4] [--seeds 0 1 2]
     [--instances ID ...] [--max-turns 10] [--max-new-tokens 128] [--temperature 1] [--out reach.json]
     python benchmarks/rlvr_reach.py --smoke   # the tiny model after one SFT step, 2 one-turn episodes of one task
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _common import arg_parser, machine, output_dir

from srl_agent.jsonio import atomic_writer


def load_policy(checkpoint: str | Path):
    """The checkpoint as an HFPolicy on the CPU, and its rendering record (the context shape it was trained on)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from srl_agent.policy.hf import HFPolicy
    from srl_agent.steps import load_rendering

    rendering = load_rendering(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    return HFPolicy(model, AutoTokenizer.from_pretrained(checkpoint), torch.device("cpu")), rendering


def play(policy, rendering, tasks: list[dict], group: int, seed: int, workers: int = 2,
         max_turns: int = 10, tasks_at_once: int = 2, max_new_tokens: int = 128, temperature: float = 1.0) -> dict:
    """G episodes per task, `tasks_at_once` tasks' episodes batched per turn (as an RLVR batch); per-task
    resolved counts and episode statuses."""
    import torch

    from srl_agent.rlvr.episodes import EpisodeConfig

    torch.manual_seed(seed)
    cfg = EpisodeConfig(group_size=group, max_turns=max_turns, max_new_tokens=max_new_tokens, max_episode_tokens=4096,
                        workers=workers, temperature=temperature)
    per_task, statuses, turns = {}, {}, []
    for first in range(0, len(tasks), tasks_at_once):
        batch = tasks[first:first + tasks_at_once]
        for task, episodes in zip(batch, _episodes(policy, batch, cfg, rendering), strict=True):
            per_task[task["instance_id"]] = sum(e.reward.resolved for e in episodes)
            for e in episodes:
                statuses[e.status] = statuses.get(e.status, 0) + 1
                turns.append(e.turns)
    resolved = sum(per_task.values())
    return {"seed": seed, "resolved": resolved, "episodes": group * len(tasks),
            "rate": resolved / (group * len(tasks)), "per_task": per_task, "statuses": statuses,
            "mean_turns": statistics.mean(turns)}


def _episodes(policy, batch: list[dict], cfg, rendering, attempts: int = 3):
    """run_episodes, played again when a sandbox did not start (seen under heavy load: the start probe times
    out), so a reach counts only episodes that could play."""
    from srl_agent.rlvr.episodes import NOT_STARTED, run_episodes
    from srl_agent.rlvr.reward import EpisodeRewardConfig

    for attempt in range(attempts):
        try:
            groups = run_episodes(policy, batch, cfg, rendering, EpisodeRewardConfig())
        except RuntimeError as e:  # none of them started
            groups, why = None, str(e)
        else:
            why = next((e.reward.reason for g in groups for e in g if e.detail == NOT_STARTED), None)
        if why is None or attempt == attempts - 1:
            if groups is None:
                raise RuntimeError(why)
            return groups
        print(f"  a sandbox did not start ({why}); playing the batch again", flush=True)


def smoke_checkpoint(run_dir: Path) -> Path:
    """The tiny model after one SFT step, saved as a checkpoint (a model to play with in smoke mode)."""
    from srl_agent.train.checkpoint import step_dir
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    cfg.method, cfg.output_dir, cfg.sft_warmup.steps, cfg.validation.trajectories = "sft", str(run_dir), 0, 0
    cfg.max_steps = cfg.checkpointing.every = cfg.validation.every = 1
    Trainer(cfg, log=lambda m: None).run()
    return step_dir(run_dir, 1)


def main() -> None:
    from srl_agent.rlvr.tasks import swe_mini_split

    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a checkpoint folder (with rendering.json); required but with --smoke")
    parser.add_argument("--side", default="train", choices=["train", "test"], help="swe-mini split side")
    parser.add_argument("--instances", nargs="+", help="only these task ids")
    parser.add_argument("--group", type=int, default=4, help="G: episodes per task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds")
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=128, help="per answer")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (episodes.temperature)")
    parser.add_argument("--workers", type=int, default=2, help="sandboxes at once")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if not (args.model or args.smoke):
        parser.error("--model is required")
    with output_dir(None, args.smoke) as tmp:
        if args.smoke:
            args.model = str(smoke_checkpoint(Path(tmp) / "sft"))
            args.out = args.out or str(Path(tmp) / "reach.json")
            args.group, args.seeds, args.max_turns, args.max_new_tokens = 2, [0], 1, 8
        tasks = [t for t in swe_mini_split(args.side) if not args.instances or t["instance_id"] in args.instances]
        reach(args, tasks[:1] if args.smoke else tasks)


def reach(args: argparse.Namespace, tasks: list[dict]) -> None:
    """Every seed's episodes with the model: the resolve rates printed, and written to --out."""
    policy, rendering = load_policy(args.model)
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        runs.append({**play(policy, rendering, tasks, args.group, seed, args.workers, args.max_turns,
                                 max_new_tokens=args.max_new_tokens, temperature=args.temperature),
                     "seconds": time.perf_counter() - start})
        run = runs[-1]
        print(f"seed {seed}: {run['resolved']}/{run['episodes']} resolved ({100 * run['rate']:.0f} %), "
              f"{run['statuses']}, mean {run['mean_turns']:.1f} turns, {run['seconds']:.0f} s", flush=True)
        print("  per task: " + ", ".join(f"{k.split('__')[1]} {v}" for k, v in run["per_task"].items()), flush=True)
    rates = [r["rate"] for r in runs]
    summary = {"model": args.model, "side": args.side, "group": args.group, "max_turns": args.max_turns,
               "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "machine": machine(),
               "rate_mean": statistics.mean(rates), "rate_stdev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
               "runs": runs}
    print(f"resolve rate {100 * summary['rate_mean']:.1f} ± {100 * summary['rate_stdev']:.1f} % over "
          f"{len(runs)} seeds ({args.group} episodes x {len(tasks)} tasks each)")
    if args.out:
        with atomic_writer(args.out) as f:
            json.dump(summary, f, indent=2)
    played = [sum(run["statuses"].values()) for run in runs]
    if played != [args.group * len(tasks)] * len(runs):
        sys.exit(f"episodes played per seed {played}, expected {args.group * len(tasks)}")


if __name__ == "__main__":
    main()
