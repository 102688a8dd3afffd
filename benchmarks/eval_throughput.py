"""Evaluation speed on swe-mini with the scripted-expert policy (replaying trajectories/swe-mini.jsonl).

1. Instances per hour at 1, 2 and 4 workers: solving in the sandbox, and solving plus grading with
   the swebench harness, each on all 20 tasks from a fresh run folder.
2. Agent overhead per tool call: the same expert calls through the agent loop (prompt building,
   parsing, the policy, trajectory keeping) against bare `sandbox.run` of the same commands in a
   fresh sandbox of the same image. Target: at most 10 % more.

Run: python benchmarks/eval_throughput.py [--workers 1 2 4] [--repeats 5] [--smoke]
(needs dockerd and `srl-agent env build swe-mini`)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _common import arg_parser, machine

from srl_agent.agent import AgentConfig, run_agent
from srl_agent.bench.eval import EvalConfig, run_eval
from srl_agent.formats import load_trajectories
from srl_agent.policy.replay import ReplayPolicy
from srl_agent.run_call import command_for
from srl_agent.testbed.instance import instance_sandbox
from srl_agent.testbed.swe_mini import load_instances

EXPERT = Path(__file__).resolve().parents[1] / "trajectories" / "swe-mini.jsonl"


def instances_per_hour(instances: list[dict], policy: ReplayPolicy, workers: int, grade: bool) -> float:
    cfg = EvalConfig(bench="swe-mini", model=f"replay:{EXPERT}", workers=workers, grade=grade)
    with tempfile.TemporaryDirectory(prefix="srl-bench-eval-") as tmp:
        start = time.perf_counter()
        summary = run_eval(cfg, policy, instances, Path(tmp) / f"w{workers}", log=lambda m: None)
        seconds = time.perf_counter() - start
    assert not grade or summary["resolved"] == len(instances), summary
    return 3600 * len(instances) / seconds


def agent_overhead(instance: dict, trajectory, repeats: int) -> tuple[float, float, int]:
    """Median seconds per tool call: (bare sandbox.run, agent loop)."""
    commands = [command_for(step.action) for step in trajectory.steps]
    bare, agent = [], []
    for _ in range(repeats):
        with instance_sandbox(instance) as sb:
            start = time.perf_counter()
            for command in commands:
                sb.run(command)
            bare.append((time.perf_counter() - start) / len(commands))
        with instance_sandbox(instance) as sb:
            start = time.perf_counter()
            run = run_agent(ReplayPolicy(trajectory), sb, instance["problem_statement"], instance["instance_id"],
                            AgentConfig(max_steps=len(commands)))
            agent.append((time.perf_counter() - start - _diff_seconds(sb)) / len(commands))
            assert run.exit_status == "submitted"
    return statistics.median(bare), statistics.median(agent), len(commands)


def _diff_seconds(sandbox) -> float:
    """The agent ends with one `diff()` that the bare loop does not make: time one and take it out."""
    start = time.perf_counter()
    sandbox.diff()
    return time.perf_counter() - start


def main() -> None:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    instances = load_instances()
    if args.smoke:  # one instance at 1 worker, one sandbox of each kind for the overhead
        instances, args.workers, args.repeats = instances[:1], [1], 1
    trajectories = list(load_trajectories([str(EXPERT)]))
    policy = ReplayPolicy(trajectories)
    print(f"machine: {machine()}")
    print(f"swe-mini: {len(instances)} instances, scripted expert, "
          f"{sum(len(t.steps) for t in trajectories)} tool calls in all")
    print("\n| workers | solve: instances/h | solve + grade: instances/h |\n|---:|---:|---:|")
    for workers in args.workers:
        solve = instances_per_hour(instances, policy, workers, grade=False)
        both = instances_per_hour(instances, policy, workers, grade=True)
        print(f"| {workers} | {solve:,.0f} | {both:,.0f} |")
    by_id = {t.id: t for t in trajectories}
    bare, agent, calls = agent_overhead(instances[0], by_id[instances[0]["instance_id"]], args.repeats)
    print(f"\nagent overhead ({instances[0]['instance_id']}, {calls} calls, median of {args.repeats}):")
    print("| | ms per tool call | vs bare |\n|---|---:|---:|")
    print(f"| bare `sandbox.run` (baseline) | {1000 * bare:.1f} | 1.00x |")
    print(f"| agent loop | {1000 * agent:.1f} | {agent / bare:.2f}x ({100 * (agent / bare - 1):+.1f} %, "
          "target <= +10 %) |")


if __name__ == "__main__":
    main()
