"""Reward throughput in pairs/s, against python's difflib measured in the same run.

Pairs are (policy-like, expert) actions from the SWE-smith fixtures: every expert action with
G = 8 policy-like variants (small edits, other arguments, other steps' actions), as a GRPO batch
scores them. The baseline is python's difflib with the metric's own autojunk setting (SRLRewardConfig's default),
so that it computes the same ratios; the script checks that it does.
Run: python benchmarks/reward_throughput.py [--groups-repeat 40] [--workers 2] [--smoke]
"""

from __future__ import annotations

import difflib
import os
import random
import sys
import time

from _common import FIXTURES, arg_parser, best_of, machine

from srl_agent.actions import render_command_line, render_completion
from srl_agent.formats import load_trajectories
from srl_agent.reward import SRLRewardConfig, similarities, srl_rewards
from srl_agent.types import ToolCall


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(max(1, len(chars) // 20)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and i < len(chars):
            del chars[i]
        elif op < 0.8:
            chars.insert(i, rng.choice("abcdefghij _./\n"))
        elif i < len(chars):
            chars[i] = rng.choice("xyz")
    return "".join(chars)


def policy_variants(expert: ToolCall, others: list[ToolCall], rng: random.Random, g: int = 8) -> list[ToolCall]:
    out = []
    for _ in range(g):
        r = rng.random()
        if r < 0.5:
            key = rng.choice(sorted(expert.arguments)) if expert.arguments else None
            args = dict(expert.arguments)
            if key and isinstance(args[key], str) and args[key]:
                args[key] = mutate(args[key], rng)
            out.append(ToolCall(expert.name, args))
        elif r < 0.8:
            out.append(rng.choice(others))
        else:
            out.append(expert)
    return out


def build_batch(repeat: int, seed: int = 0) -> tuple[list[ToolCall], list[ToolCall]]:
    rng = random.Random(seed)
    experts = [s.action for t in load_trajectories([str(FIXTURES / "swe-smith")]) for s in t.steps]
    policy, targets = [], []
    for _ in range(repeat):
        for expert in experts:
            for call in policy_variants(expert, experts, rng):
                policy.append(call)
                targets.append(expert)
    return policy, targets


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--groups-repeat", type=int, default=40, help="copies of the 39 expert actions x G=8")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.smoke:
        args.groups_repeat, args.workers = 1, 2

    policy, experts = build_batch(args.groups_repeat)
    if args.smoke:  # the groups of the first 12 expert actions
        policy, experts = policy[:96], experts[:96]
    completions = [render_completion("thinking about the next step", call) for call in policy]
    pairs = [(render_command_line(p), render_command_line(e)) for p, e in zip(policy, experts, strict=True)]
    n = len(pairs)
    mean_len = sum(len(a) + len(b) for a, b in pairs) / (2 * n)
    autojunk = SRLRewardConfig().autojunk  # the metric's default, which the full-reward rows use too
    print(f"machine: {machine()}")
    print(f"{n} (policy, expert) pairs, mean action length {mean_len:.0f} characters, workers={args.workers}, "
          f"autojunk={autojunk}")

    def python_difflib() -> list[float]:
        return [difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio() for a, b in pairs]

    start = time.perf_counter()
    expected = python_difflib()  # one pass: without autojunk python's difflib takes minutes on the full batch
    base = time.perf_counter() - start
    repeats = 1 if args.smoke else 3
    similarities(pairs[:256], "difflib", autojunk, workers=args.workers)  # start the worker pool before timing
    rows = [("python difflib (baseline)", base)]
    rows.append(("difflib metric, 1 process", best_of(lambda: similarities(pairs, "difflib", autojunk, workers=1),
                                                       repeats)))
    rows.append((f"difflib metric, batch, {args.workers} processes",
                 best_of(lambda: similarities(pairs, "difflib", autojunk, workers=args.workers), repeats)))
    rows.append(("lcs metric, 1 thread", best_of(lambda: similarities(pairs, "lcs", workers=1), repeats)))
    rows.append((f"lcs metric, batch, {args.workers} threads",
                 best_of(lambda: similarities(pairs, "lcs", workers=args.workers), repeats)))
    for metric in ("difflib", "lcs"):
        cfg = SRLRewardConfig(metric=metric)
        rows.append((f"full SRL reward ({metric}: parse + render + score)",
                     best_of(lambda cfg=cfg: srl_rewards(completions, experts, cfg, workers=args.workers), repeats)))
    # the compiled metric must give python's ratios exactly, in one process and spread over the pool
    for workers in sorted({1, args.workers}):
        if similarities(pairs, "difflib", autojunk, workers=workers) != expected:
            sys.exit(f"difflib metric drifted from python's difflib (autojunk={autojunk}, workers={workers})")
    if [difflib.SequenceMatcher(None, a, b, autojunk=not autojunk).ratio() for a, b in pairs] == expected:
        sys.exit("no pair's ratio depends on autojunk: the drift check could not tell the settings apart")

    print(f"\n{'':52} {'pairs/s':>12} {'vs difflib':>11}")
    for name, seconds in rows:
        print(f"{name:52} {n / seconds:12,.0f} {base / seconds:10.1f}x")

if __name__ == "__main__":
    sys.exit(main())
