"""`srl-agent reward`: score completions against expert actions (the work: srl_agent.reward)."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from .common import console, log


def add_parser(sub) -> None:
    from ..actions import CALL_STYLES
    from ..reward import GRANULARITIES, METRICS

    reward = sub.add_parser("reward", help="score completions against expert actions")
    reward.add_argument("--expert", help="expert tool call as JSON ({\"name\":...,\"arguments\":{...}}) or @FILE")
    reward.add_argument("--completion", help="the policy's answer text, or - for stdin")
    reward.add_argument("--batch", metavar="JSONL", help="rows with 'completion' and 'expert_action'")
    reward.add_argument("--out", help="with --batch: write the rows with a 'reward' field here")
    reward.add_argument("--workers", type=int, default=1)
    reward.add_argument("--metric", default="difflib", choices=METRICS)
    reward.add_argument("--granularity", default="string", choices=GRANULARITIES)
    reward.add_argument("--autojunk", action=argparse.BooleanOptionalAction, default=False,
                        help="difflib's autojunk (default off; on is the paper-literal SequenceMatcher(None, a, b))")
    reward.add_argument("--call-style", default="hermes", choices=CALL_STYLES)
    reward.set_defaults(handler=cmd_reward)


def _read_expert(value: str):
    from ..jsonio import read_json
    from ..reward import expert_from

    path = value[1:] if value.startswith("@") else None
    try:
        return expert_from(read_json(path) if path else value)  # read_json names the file it cannot read
    except ValueError as e:  # json.JSONDecodeError is one
        where = f"{path}: expert" if path else "--expert"
        raise UserError(f"{where} is not a tool call JSON object: {e}") from None


def cmd_reward(args: argparse.Namespace) -> int:
    from ..reward import SRLRewardConfig, explain_reward

    cfg = SRLRewardConfig(args.metric, args.granularity, args.autojunk, args.call_style)
    if args.batch:
        return _reward_batch(args, cfg)
    if args.expert is None or args.completion is None:
        raise UserError("give --expert and --completion, or --batch FILE")
    completion = sys.stdin.read() if args.completion == "-" else args.completion
    value, reason = explain_reward(completion, _read_expert(args.expert), cfg)
    log(reason)
    print(f"{value:.6f}")
    return 0


def _reward_batch(args: argparse.Namespace, cfg) -> int:
    from ..jsonio import write_jsonl
    from ..reward import read_scoring_rows, srl_rewards

    rows, completions, experts = read_scoring_rows(args.batch)
    rewards = srl_rewards(completions, experts, cfg, workers=args.workers)
    for row, r in zip(rows, rewards, strict=True):
        row["reward"] = r
    if args.out:
        write_jsonl(args.out, rows)
    else:
        for row in rows:
            print(json.dumps({"reward": row["reward"]}))
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    console.print(f"{len(rewards)} completions, {sum(r == -1.0 for r in rewards)} format violations")
    print(f"{mean:.6f}")
    return 0
