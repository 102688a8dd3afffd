"""RLVR speed: episodes per hour and where the time goes, at 1, 2 and 4 sandbox workers, with agent eval beside it.

1. RLVR: `--steps` steps of `srl-agent train --method rlvr` (the tiny model built from its config, or the
   checkpoint `--init-from`, e.g. an SFT warm-up, so that episodes make tool calls; the same seed, the same
   tasks, dynamic sampling off so that every run plays the same number of episodes) at each worker count.
   From the trainer's own per-step timings: episodes/hour and the share of the step in generation (one
   batched generate per turn), in sandboxes (open, tool calls, diff, tests, close) and in the update.
2. Agent eval: instances/hour of `srl-agent eval --bench swe-mini` (solve and grade with the swebench harness)
   with the same model, the same tasks and the same turn limit, at the same worker counts.
Ratios are against the 1-worker run of the same invocation.

Run: nice python benchmarks/rlvr_speed.py [--workers 1 2 4] [--steps 2] [--init-from CHECKPOINT] [--smoke]
(needs dockerd and `srl-agent env build swe-mini`)
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import arg_parser, machine

SEED = 0
PARTS = ("generate", "sandbox", "update")


@dataclass(frozen=True)
class Workload:
    tasks: tuple[str, ...] = ("swemini__configlite-1", "swemini__moneyfmt-1", "swemini__inventory-1",
                              "swemini__tabular-1")
    group_size: int = 4
    tasks_per_step: int = 2
    max_turns: int = 4
    max_new_tokens: int = 128


SMOKE_WORKLOAD = Workload(tasks=("swemini__configlite-1",), group_size=2, tasks_per_step=1, max_turns=1,
                          max_new_tokens=8)


def rlvr_config(out: Path, tasks_file: Path, workers: int, steps: int, init_from: str | None, load: Workload):
    from srl_agent.train.config import TrainConfig

    cfg = TrainConfig.builtin()
    cfg.init_from = init_from
    cfg.method, cfg.seed, cfg.output_dir, cfg.rlvr.tasks, cfg.max_steps = "rlvr", SEED, str(out), str(tasks_file), steps
    cfg.rendering.history, cfg.episodes.context, cfg.sft_warmup.steps = "full", "episode", 0  # whole episodes
    cfg.grpo.dynamic_sampling, cfg.validation.examples = False, 0
    cfg.rlvr.batch_size, cfg.validation.every, cfg.checkpointing.every = load.tasks_per_step, steps, steps
    cfg.episodes.group_size, cfg.episodes.max_turns, cfg.episodes.max_new_tokens = load.group_size, load.max_turns, \
        load.max_new_tokens
    cfg.episodes.workers = workers
    return cfg


def rlvr_speed(tasks_file: Path, workers: int, steps: int, init_from: str | None, load: Workload) -> dict:
    """Episodes/hour and the seconds in each part, summed over the steps (the trainer's per-step timings)."""
    from srl_agent.train.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="srl-bench-rlvr-") as tmp:
        cfg = rlvr_config(Path(tmp) / "run", tasks_file, workers, steps, init_from, load)
        trainer = Trainer(cfg, log=lambda m: None)
        trainer.run()
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("phase") == "rlvr"]
    parts = {k: sum(r[f"time_{k}"] for r in rows) for k in PARTS}
    seconds, episodes = sum(r["seconds"] for r in rows), sum(r["episodes"] for r in rows)
    return {"episodes": episodes, "seconds": seconds, "episodes_per_hour": 3600 * episodes / seconds,
            **{f"share_{k}": v / seconds for k, v in parts.items()},
            **{f"seconds_{k}": v for k, v in parts.items()},
            "resolved": sum(r["rlvr_resolve_rate"] * r["episodes"] for r in rows),
            "format_errors_per_episode": sum(r["rlvr_format_errors"] * r["episodes"] for r in rows) / episodes}


def eval_speed(policy, instances: list[dict], workers: int, load: Workload) -> float:
    """Instances/hour of agent eval (solve, then grade with the harness), from a fresh run folder."""
    from srl_agent.agent import AgentConfig
    from srl_agent.bench.eval import EvalConfig, run_eval
    from srl_agent.steps import StepConfig

    agent = AgentConfig(max_steps=load.max_turns, max_new_tokens=load.max_new_tokens,
                        rendering=StepConfig(history=None))
    cfg = EvalConfig(bench="swe-mini", model="tiny", workers=workers, grade=True, agent=agent)
    with tempfile.TemporaryDirectory(prefix="srl-bench-eval-") as tmp:
        start = time.perf_counter()
        run_eval(cfg, policy, instances, Path(tmp) / f"w{workers}", log=lambda m: None)
        return 3600 * len(instances) / (time.perf_counter() - start)


def start_policy(init_from: str | None):
    """The model the RLVR runs start from: the checkpoint, or the tiny model built from the config with the seed."""
    import torch

    from srl_agent.policy.hf import HFPolicy
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    torch.manual_seed(SEED)
    model, tokenizer = load_model(TrainConfig.builtin(), weights=init_from)
    return HFPolicy(model.eval(), tokenizer)


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=2, help="RLVR steps per worker count")
    parser.add_argument("--init-from", help="a checkpoint to start from (default: the tiny model, untrained)")
    args = parser.parse_args()
    load = SMOKE_WORKLOAD if args.smoke else Workload()
    if args.smoke:
        args.workers, args.steps = [1], 1

    from srl_agent.jsonio import write_jsonl
    from srl_agent.testbed.swe_mini import load_instances

    instances = load_instances(list(load.tasks))
    print(f"machine: {machine()}")
    print(f"{args.init_from or 'tiny model, untrained'}, seed {SEED}; RLVR: {args.steps} steps x {load.tasks_per_step} "
          f"tasks x {load.group_size} episodes, "
          f"max {load.max_turns} turns of {load.max_new_tokens} tokens; eval: {len(instances)} instances, same limits",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="srl-bench-tasks-") as tmp:
        tasks_file = Path(tmp) / "tasks.jsonl"
        write_jsonl(tasks_file, instances)
        rlvr = {w: rlvr_speed(tasks_file, w, args.steps, args.init_from, load) for w in args.workers}
    policy = start_policy(args.init_from)
    evals = {w: eval_speed(policy, instances, w, load) for w in args.workers}
    base, eval_base = rlvr[args.workers[0]], evals[args.workers[0]]
    print("\n| workers | RLVR episodes/h | ratio | generation | sandboxes | update | eval instances/h | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for w in args.workers:
        r = rlvr[w]
        parts = "".join(f"| {r[f'share_{k}']:.0%} ({r[f'seconds_{k}']:.0f} s) " for k in PARTS)
        print(f"| {w} | {r['episodes_per_hour']:.0f} | {r['episodes_per_hour'] / base['episodes_per_hour']:.2f}x "
              f"{parts}| {evals[w]:.0f} | {evals[w] / eval_base:.2f}x |")
    for w in args.workers:
        r = rlvr[w]
        print(f"workers {w}: {r['episodes']} episodes in {r['seconds']:.1f} s, {r['resolved']:.0f} resolved, "
              f"{r['format_errors_per_episode']:.2f} format errors per episode")


if __name__ == "__main__":
    main()
