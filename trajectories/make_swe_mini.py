"""Make swe-mini.jsonl: the scripted expert's runs on every swe-mini task (the training default).

The expert (`srl_agent.bench.expert`) plans its steps from the gold patch and runs them through the
agent loop in the task's own image, so every observation is real; a run is kept only if it submits
the gold patch. Needs Docker and the images (`srl-agent env build swe-mini`).

    python trajectories/make_swe_mini.py [--workers 2] [--instances ID ...] [--short --out FILE]

With --instances, only those tasks' runs are (re)made; the file keeps the other runs as they are.
--short plays `short_expert_plan` (view, edit, submit, fixed wording): runs a tiny model can imitate, e.g.
`--short --instances swemini__pocketlib-{1..6} --out envs/swe-mini/pocketlib-short.jsonl`.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from srl_agent.bench.expert import run_expert
from srl_agent.formats import load_trajectories
from srl_agent.jsonio import write_jsonl
from srl_agent.testbed.instance import instance_sandbox
from srl_agent.testbed.swe_mini import load_instances


def solve(instance: dict, short: bool = False):
    with instance_sandbox(instance) as sandbox:
        return run_expert(instance, sandbox, short).trajectory


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).with_name("swe-mini.jsonl")))
    parser.add_argument("--instances", nargs="+", metavar="ID", help="only these tasks; keep the file's other runs")
    parser.add_argument("--short", action="store_true", help="the short plan: view, edit, submit, fixed wording")
    args = parser.parse_args()
    with ThreadPoolExecutor(args.workers) as pool:
        made = list(pool.map(lambda instance: solve(instance, args.short), load_instances(args.instances)))
    for traj in made:
        print(f"{traj.id}: {len(traj.steps)} steps")
    kept = {t.id: t for t in load_trajectories([args.out])} if args.instances and Path(args.out).exists() else {}
    trajectories = sorted({**kept, **{t.id: t for t in made}}.values(), key=lambda t: t.id)
    write_jsonl(args.out, [traj.to_dict() for traj in trajectories])
    print(f"wrote {len(trajectories)} trajectories to {args.out}")
