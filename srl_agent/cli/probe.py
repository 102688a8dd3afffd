"""`srl-agent probe`: before training, how often a model answers in the required format (the work: srl_agent.probe)."""

from __future__ import annotations

import argparse

from rich.markup import escape

from ..errors import UserError
from .common import log, out


def add_parser(sub) -> None:
    from ..actions import CALL_STYLES

    probe = sub.add_parser("probe", help="before training: how often a model answers in the required format")
    probe.add_argument("--model", required=True, help="checkpoint folder, hub id or OpenAI-compatible URL")
    probe.add_argument("--trajectories", nargs="+", metavar="PATH", default=None,
                       help="expert trajectories to draw prompts from (default: the shipped trajectories/)")
    probe.add_argument("--config", help="render prompts as this training config would (its system prompt, history, "
                                        "observation cap); default: the checkpoint's rendering.json")
    probe.add_argument("-n", "--prompts", type=int, default=32, help="prompts to sample")
    probe.add_argument("--samples", type=int, default=1, help="answers per prompt")
    probe.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    probe.add_argument("--max-new-tokens", type=int, default=512)
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--history", help="override the rendering's history window (last-N, N or full)")
    probe.add_argument("--max-observation-chars", type=int, help="override the rendering's observation cap")
    probe.add_argument("--call-style", choices=CALL_STYLES, help="override the call style")
    probe.set_defaults(handler=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..agent import rendering_for
    from ..formats import load_trajectories
    from ..paths import project_dir
    from ..policy import SamplingParams, load_policy
    from ..probe import config_rendering, probe, sample_examples
    from ..reward import SRLRewardConfig

    if args.prompts < 1 or args.samples < 1:
        raise UserError("-n and --samples must be at least 1")
    trajectories = list(load_trajectories(args.trajectories or [str(project_dir("trajectories"))]))
    policy = load_policy(args.model)
    rendering = rendering_for(args.model, policy, log, args.history, args.max_observation_chars, args.call_style,
                              base=config_rendering(args.config, policy, log) if args.config else None)
    examples = sample_examples(trajectories, rendering, args.prompts, args.seed)
    params = SamplingParams(args.samples, args.temperature, 1.0, args.max_new_tokens)
    report = probe(policy, examples, SRLRewardConfig(call_style=rendering.call_style), params)
    table = Table(title=f"probe: {args.model} ({rendering.call_style} calls)")
    for column in ("prompts", "answers", "format ok", "mean reward", "mean reward when well-formed"):
        table.add_column(column, justify="right")
    similarity = "-" if report.mean_similarity is None else f"{report.mean_similarity:.3f}"
    table.add_row(str(report.prompts), str(report.answers), f"{100 * report.format_ok:.1f}%",
                  f"{report.mean_reward:+.3f}", similarity)
    out.print(table)
    if report.errors:
        errors = Table(title="most common format errors")
        errors.add_column("answers", justify="right")
        errors.add_column("error")
        for message, count in report.errors:
            errors.add_row(str(count), escape(message))
        out.print(errors)
    if report.format_ok == 0:
        out.print("No answer follows the format: every SRL group would be flat and dropped. Start with an SFT "
                  "warm-up (sft_warmup_steps) or a worked example of the format in the system prompt.")
    return 0
