"""The asynchronous agent loop against today's: eval instances/hour and RLVR episodes/hour, and where the time goes.

1. Eval, in-process model: `run_eval` on swe-mini (no grading, temperature 0) with the tiny model built from the
   default train config, at 1 and 4 workers. `serialised`: one generate per prompt (batch size 1, what eval's
   one-generate-at-a-time lock did); `batched`: the workers' waiting prompts in one generate (eval's default
   batching: all workers' prompts, or what waits after half the last generation's time). The random model writes
   no tool call, so an instance is its format-error turns: generation.
2. RLVR: `run_episodes` at 1, 2 and 4 sandbox workers, `lock-step` (every live episode's turn in one generate, as
   the trainer plays them) against `async` (each episode on its own; the waiting prompts go out once the oldest has
   waited half the last generation's time, at most `--wait` s, after the model got free). The
   policy pays the tiny model's real generation for every batch, then answers with the scripted expert's call of
   that turn (trajectories/swe-mini.jsonl), so that episodes really run commands and tests in their sandboxes.
Every row runs `--repeats` times, the rows interleaved, and keeps its fastest run (the one other jobs on a shared
machine disturbed least). Ratios are within one invocation. Where the time goes: the model's share of the wall
time (`model_busy`: seconds in generate / seconds), the number of generate calls and their mean batch; the rest
is sandboxes (open, tool calls, tests, close) not overlapped by generation.

Run: nice python benchmarks/agent_loop.py [--workers 1 2 4] [--repeats 3] [--only eval|rlvr] [--smoke]
(needs dockerd and `srl-agent env build swe-mini`)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from _common import arg_parser, machine

from srl_agent.actions import render_completion
from srl_agent.bench.eval import EVAL_BATCHING
from srl_agent.formats import load_trajectories
from srl_agent.policy import Completion
from srl_agent.policy.batcher import LOCK_STEP, BatchLimits
from srl_agent.testbed.swe_mini import load_instances

EXPERT = Path(__file__).resolve().parents[1] / "trajectories" / "swe-mini.jsonl"
TASKS = ("swemini__configlite-1", "swemini__moneyfmt-1", "swemini__inventory-1", "swemini__tabular-1",
         "swemini__semverkit-1", "swemini__routekit-1", "swemini__taskgraph-1", "swemini__tabular-2")


def tiny_policy():
    import torch

    from srl_agent.policy.hf import HFPolicy
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model(TrainConfig())
    return HFPolicy(model.eval(), tokenizer)


class ExpertAtModelCost:
    """Pays the model's generation of each batch, then answers with the expert's call of the episode's turn."""

    def __init__(self, policy, trajectories):
        self.policy, self.tokenizer = policy, policy.tokenizer
        self.steps = {t.problem_statement.strip(): t.steps for t in trajectories}
        self.end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.batch_sizes: list[int] = []

    def generate_ids(self, prompt_ids, params):
        self.batch_sizes.append(len(prompt_ids))
        self.policy.generate_ids(prompt_ids, params, with_logprobs=True)
        out = []
        for ids in prompt_ids:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            steps = next(s for statement, s in self.steps.items() if statement in text)
            step = steps[min(text.count("<|im_start|>assistant") - 1, len(steps) - 1)]
            answer = render_completion(step.thought, step.action, "hermes")
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end]
            out.append([Completion(answer, answer_ids, [-1.0] * len(answer_ids))])
        return out


def eval_rate(policy, instances: list[dict], workers: int, batching: BatchLimits, max_new_tokens: int) -> dict:
    from srl_agent.agent import AgentConfig
    from srl_agent.bench.eval import EvalConfig, run_eval

    agent = AgentConfig(max_steps=4, max_format_errors=2, max_new_tokens=max_new_tokens, temperature=0.0)
    cfg = EvalConfig(bench="swe-mini", model="tiny", workers=workers, grade=False, batching=batching, agent=agent)
    with tempfile.TemporaryDirectory(prefix="srl-bench-loop-") as tmp:
        start = time.perf_counter()
        summary = run_eval(cfg, policy, instances, Path(tmp) / "run", log=lambda m: None)
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "instances_per_hour": round(3600 * len(instances) / seconds, 1),
            "agent_exit": {str(k): v for k, v in summary["agent_exit"].items()}}


def rlvr_rate(policy, instances: list[dict], workers: int, batching: BatchLimits, group_size: int, max_turns: int,
              max_new_tokens: int) -> dict:
    from srl_agent.rlvr.config import EpisodeConfig
    from srl_agent.rlvr.episodes import run_episodes
    from srl_agent.rlvr.reward import EpisodeRewardConfig
    from srl_agent.steps import StepConfig

    cfg = EpisodeConfig(group_size=group_size, max_turns=max_turns, max_new_tokens=max_new_tokens,
                        max_episode_tokens=8192, temperature=1.0, workers=workers, context="episode")
    timings = {"generate": 0.0}
    policy.batch_sizes.clear()
    start = time.perf_counter()
    groups = run_episodes(policy, instances, cfg, StepConfig(history=None), EpisodeRewardConfig(), timings=timings,
                          batching=batching)
    seconds = time.perf_counter() - start
    episodes = [e for g in groups for e in g]
    return {"seconds": round(seconds, 2), "episodes_per_hour": round(3600 * len(episodes) / seconds, 1),
            "generate_s": round(timings["generate"], 2), "model_busy": round(timings["generate"] / seconds, 2),
            "batches": len(policy.batch_sizes),
            "mean_batch": round(sum(policy.batch_sizes) / max(1, len(policy.batch_sizes)), 2),
            "statuses": sorted({str(e.status) for e in episodes}),
            "resolved": sum(e.reward.resolved for e in episodes)}


def fastest(rows: list[dict]) -> dict:
    """The repeat with the shortest wall time (the one the other jobs on the machine disturbed least), with the
    wall times of all repeats."""
    best = min(rows, key=lambda r: r["seconds"])
    return {**best, "repeats_s": [r["seconds"] for r in rows]}


def main() -> None:
    parser = arg_parser(__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=4, help="RLVR tasks (G=2 episodes each)")
    parser.add_argument("--eval-instances", type=int, default=8)
    parser.add_argument("--wait", type=float, default=1.0,
                        help="async RLVR: the longest a prompt waits for others (also half the last generation)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each row, interleaved; the fastest is kept")
    parser.add_argument("--only", choices=["eval", "rlvr"], help="one of the two parts")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.smoke:
        args.workers, args.tasks, args.eval_instances, args.max_new_tokens, args.repeats = [1], 1, 1, 4, 1
    by_id = {i["instance_id"]: i for i in load_instances()}
    policy = tiny_policy()
    load = os.getloadavg()
    print(f"machine: {machine()}; load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    results: dict = {"machine": machine(), "load_at_start": [round(x, 2) for x in load], "eval": {}, "rlvr": {},
                     "ratios": {}}

    if args.only != "rlvr":
        instances = [by_id[t] for t in TASKS[:args.eval_instances]]
        top = max(args.workers)
        rows: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for workers in sorted({1, top}):
                for name, batching in (("serialised", BatchLimits(max_size=1)), ("batched", EVAL_BATCHING)):
                    rows.setdefault(f"{name}_w{workers}", []).append(
                        eval_rate(policy, instances, workers, batching, args.max_new_tokens))
        ev = results["eval"] = {key: fastest(runs) for key, runs in rows.items()}
        for key, row in ev.items():
            print(f"eval  {key}: {row}", flush=True)
        for name in ("serialised", "batched"):
            results["ratios"][f"eval_{name}_w{top}_over_w1"] = round(
                ev[f"{name}_w{top}"]["instances_per_hour"] / ev[f"{name}_w1"]["instances_per_hour"], 2)

    if args.only != "eval":
        expert = ExpertAtModelCost(policy, load_trajectories([str(EXPERT)]))
        tasks = [by_id[t] for t in TASKS[:args.tasks]]
        turns, group = (1, 1) if args.smoke else (6, 2)
        rows = {}
        for _ in range(args.repeats):
            for workers in args.workers:
                for name, batching in (("lock-step", LOCK_STEP),
                                       ("async", BatchLimits(max_wait=args.wait, wait_share=0.5))):
                    rows.setdefault(f"{name}_w{workers}", []).append(
                        rlvr_rate(expert, tasks, workers, batching, group, turns, args.max_new_tokens))
        rl = results["rlvr"] = {key: fastest(runs) for key, runs in rows.items()}
        for key, row in rl.items():
            print(f"rlvr  {key}: {row}", flush=True)
        for w in args.workers:
            results["ratios"][f"rlvr_async_over_lock_step_w{w}"] = round(
                rl[f"async_w{w}"]["episodes_per_hour"] / rl[f"lock-step_w{w}"]["episodes_per_hour"], 2)
    results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results["ratios"]), f"load average at end {results['load_at_end']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
