"""Which difflib setting makes the SRL reward separate a near-miss from an unrelated call?

On the real fixture trajectories (and the shipped ones), for every expert call of a tool kind
(`bash`, `str_replace_editor` `create` / `str_replace` / `view`), the reward (string granularity,
difflib) of:

- near: the call against itself with one line changed: the middle line of its longest argument
  gets every letter and digit shifted by one (same length, same shape); an argument of one or two
  lines gets its middle word changed that way instead;
- unrelated: the call against another expert call of the same kind from another trajectory.

with autojunk on (Python's default, so `SequenceMatcher(None, a, b).ratio()` as the paper writes
it) and off. A useful reward scores near-misses high and unrelated calls low: the table prints
both means and the share of calls whose near-miss outscores the unrelated call.

    python benchmarks/reward_autojunk.py [--trajectories PATH...] [--smoke]
"""

from __future__ import annotations

import argparse
import re
import string
from collections import defaultdict
from statistics import mean

from _common import FIXTURES, arg_parser, machine

from srl_agent.formats import load_trajectories
from srl_agent.paths import project_dir
from srl_agent.reward import SRLRewardConfig, action_similarity
from srl_agent.types import ToolCall

KINDS = ("bash", "create", "str_replace", "view")
_WORD = re.compile(r"[A-Za-z0-9]+")
_SHIFT = str.maketrans(string.ascii_lowercase + string.ascii_uppercase + string.digits,
                       string.ascii_lowercase[1:] + "a" + string.ascii_uppercase[1:] + "A" + string.digits[1:] + "0")


def kind(call: ToolCall) -> str | None:
    if call.name == "bash":
        return "bash"
    if call.name == "str_replace_editor" and call.arguments.get("command") in KINDS:
        return call.arguments["command"]
    return None


def one_line_changed(call: ToolCall) -> ToolCall:
    """The call with the middle line of its longest string argument (of a one- or two-line value: its
    middle run of letters and digits) shifted character by character: same length, same shape."""
    texts = {k: v for k, v in call.arguments.items() if isinstance(v, str) and (k != "command" or call.name == "bash")}
    key = max(texts, key=lambda k: len(texts[k]))
    lines = texts[key].split("\n")
    if len(lines) >= 3:
        i = len(lines) // 2
        lines[i] = lines[i].translate(_SHIFT)
        changed = "\n".join(lines)
    else:  # a path component, a flag, a word
        runs = list(_WORD.finditer(texts[key]))
        run = runs[len(runs) // 2]
        changed = texts[key][:run.start()] + run[0].translate(_SHIFT) + texts[key][run.end():]
    return ToolCall(call.name, {**call.arguments, key: changed})


def measure(paths: list[str]) -> dict[tuple[str, bool], dict[str, float]]:
    by_kind: dict[str, list[tuple[str, ToolCall]]] = defaultdict(list)
    for traj in load_trajectories(paths):
        for step in traj.steps:
            if (k := kind(step.action)) is not None:
                by_kind[k].append((traj.id, step.action))
    table = {}
    for k in KINDS:
        calls = by_kind[k]
        for autojunk in (True, False):
            cfg = SRLRewardConfig(autojunk=autojunk)
            near, unrelated, wins = [], [], 0
            for i, (traj_id, call) in enumerate(calls):
                other = next((c for j, (t, c) in enumerate(calls[i + 1:] + calls[:i]) if t != traj_id), None)
                if other is None:
                    continue
                a = action_similarity(one_line_changed(call), call, cfg)
                b = action_similarity(other, call, cfg)
                near.append(a)
                unrelated.append(b)
                wins += a > b
            table[k, autojunk] = {"calls": len(near), "near": mean(near), "unrelated": mean(unrelated),
                                  "gap": mean(near) - mean(unrelated), "near_wins": wins / len(near),
                                  "near_min": min(near),
                                  "auc": sum(x > y for x in near for y in unrelated) / (len(near) * len(unrelated))}
    return table


def main() -> None:
    parser = arg_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", nargs="+", default=[str(FIXTURES), str(project_dir("trajectories"))])
    args = parser.parse_args()
    if args.smoke:  # the fixtures alone: every kind of call is there
        args.trajectories = [str(FIXTURES)]
    table = measure(args.trajectories)
    print(f"machine: {machine()}\n")
    print("| call | calls | autojunk | near-miss reward | unrelated reward | gap | near-miss > its unrelated | "
          "near-miss > any unrelated (AUC) | worst near-miss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (k, autojunk), row in table.items():
        print(f"| {k} | {row['calls']} | {'on' if autojunk else 'off'} | {row['near']:.3f} | {row['unrelated']:.3f} | "
              f"{row['gap']:+.3f} | {100 * row['near_wins']:.0f} % | "
              f"{100 * row['auc']:.1f} % | {row['near_min']:.3f} |")


if __name__ == "__main__":
    main()
