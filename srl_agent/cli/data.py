"""`srl-agent data build|convert|stats|show`: trajectories in, step-wise SRL examples out (the work: srl_agent.data)."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import UserError
from .common import bars, console, log, out


def add_parser(sub) -> None:
    from ..actions import CALL_STYLES

    data = sub.add_parser("data", help="import trajectories and cut them into step-wise SRL examples")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser("build", help="trajectories -> steps.jsonl")
    _add_source_options(build)
    build.add_argument("--out", required=True, help="output JSONL of step examples")
    build.add_argument("--history", default="last-2", help="previous expert steps in each prompt: last-N, N or full")
    build.add_argument("--tokenizer", default="tiny",
                       help="tokenizer for the chat template and token counts: tiny (shipped), a path, a hub id, "
                            "or none")
    build.add_argument("--max-prompt-tokens", type=int, help="shorten the history, then drop examples, beyond this")
    build.add_argument("--max-observation-chars", type=int, default=4000,
                       help="observations are cut in the middle beyond this many characters")
    build.add_argument("--call-style", default="auto", choices=["auto", *CALL_STYLES],
                       help="how calls are written (default: read off --tokenizer's chat template)")
    build.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes")
    build.set_defaults(handler=cmd_data_build)

    convert = data_sub.add_parser("convert", help="trajectories of any format -> canonical trajectories JSONL")
    _add_source_options(convert)
    convert.add_argument("--out", required=True)
    convert.set_defaults(handler=cmd_data_convert)

    stats = data_sub.add_parser("stats", help="summarise a steps.jsonl")
    stats.add_argument("steps")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.set_defaults(handler=cmd_data_stats)

    show = data_sub.add_parser("show", help="pretty-print one example of a steps.jsonl")
    show.add_argument("steps")
    show.add_argument("--index", type=int, default=0, help="0-based example index")
    show.add_argument("--trajectory", help="pick by trajectory id (with --step)")
    show.add_argument("--step", type=int, default=0)
    show.add_argument("--rendered", action="store_true", help="print the exact chat-template prompt text")
    show.add_argument("--tokenizer", default="tiny")
    show.set_defaults(handler=cmd_data_show)


def _add_source_options(p: argparse.ArgumentParser) -> None:
    from ..formats import FORMATS

    p.add_argument("--trajectories", nargs="+", required=True, metavar="PATH",
                   help="trajectory files or folders (.traj, .json, .jsonl, .parquet) or hf:OWNER/NAME[@SPLIT]")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="source format (default: detect)")
    p.add_argument("--only-resolved", action="store_true", help="keep only trajectories marked resolved")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed records, report them, and go on")


def cmd_data_build(args: argparse.Namespace) -> int:
    from ..data import build_steps
    from ..steps import StepConfig, parse_history

    try:
        history = parse_history(args.history)
    except ValueError as e:
        raise UserError(str(e)) from None
    cfg = StepConfig(history=history, max_observation_chars=args.max_observation_chars, call_style=args.call_style)
    tokenizer = None if args.tokenizer.lower() == "none" else args.tokenizer
    with bars() as progress:
        task = progress.add_task("building examples", total=None, info="0 examples")
        made = [0]

        def tick(n: int) -> None:
            made[0] += n
            progress.update(task, advance=1, info=f"{made[0]} examples")

        report = build_steps(args.trajectories, args.out, cfg, tokenizer=tokenizer,
                             max_prompt_tokens=args.max_prompt_tokens, fmt=args.format,
                             only_resolved=args.only_resolved, skip_bad=args.skip_bad, workers=args.workers,
                             on_trajectory=tick, log=log)
    _print_skipped(report.load.skipped)
    extra = f", {report.dropped_too_long} over --max-prompt-tokens dropped" if report.dropped_too_long else ""
    console.print(f"{report.load.summary()}; {report.examples} examples written to {args.out}{extra}")
    return 0


def _print_skipped(skipped: list[str]) -> None:
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} bad record(s):[/]")
        for reason in skipped:
            log(f"  - {reason}")


def cmd_data_convert(args: argparse.Namespace) -> int:
    from ..data import convert_trajectories

    report = convert_trajectories(args.trajectories, args.out, fmt=args.format, skip_bad=args.skip_bad,
                                  only_resolved=args.only_resolved)
    _print_skipped(report.skipped)
    console.print(f"{report.summary()}; written to {args.out}")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..data import steps_stats

    stats = steps_stats(args.steps)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    out.print(f"[bold]{args.steps}[/]: {stats['examples']} examples from {stats['trajectories']} trajectories")
    for title, values in (("steps per trajectory", stats["steps_per_trajectory"]),
                          ("prompt tokens", stats["prompt_tokens"]),
                          ("history steps in prompt", stats["history_steps"])):
        if values:
            table = Table(title=title, title_justify="left")
            for key in values:
                table.add_column(str(key), justify="right")
            table.add_row(*(f"{v:g}" if isinstance(v, float) else str(v) for v in values.values()))
            out.print(table)
    tools = Table(title="expert tools", title_justify="left")
    tools.add_column("tool")
    tools.add_column("examples", justify="right")
    tools.add_column("share", justify="right")
    for name, count in stats["tools"].items():
        tools.add_row(name, str(count), f"{100 * count / max(1, stats['examples']):.1f}%")
    out.print(tools)
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.text import Text

    from ..actions import render_command_line
    from ..chat import render_prompt
    from ..data import find_example
    from ..tokenizer import load_tokenizer

    ex = find_example(args.steps, args.index, args.trajectory, args.step if args.trajectory else None)
    if args.rendered:
        tok = load_tokenizer(args.tokenizer)
        print(render_prompt(tok, ex.prompt, ex.tools))
        return 0
    out.print(f"[bold]{ex.trajectory_id}[/] step {ex.step_index + 1}/{ex.num_steps} "
              f"({ex.history_steps} history steps, {ex.prompt_tokens or '?'} prompt tokens)")
    styles = {"system": "magenta", "user": "blue", "assistant": "green", "tool": "yellow"}
    for m in ex.prompt:
        body = f"<think>{m['reasoning_content']}</think>" if m.get("reasoning_content") else m.get("content") or ""
        for tc in m.get("tool_calls") or []:
            body += f"\n→ {tc['function']['name']} {json.dumps(tc['function']['arguments'], ensure_ascii=False)}"
        out.print(Panel(Text(body), title=m["role"], title_align="left", border_style=styles.get(m["role"], "white")))
    expert = ex.expert
    out.print(Panel(Text(f"{expert.to_json()}\n\n$ {render_command_line(expert)}"), title="expert action",
                    title_align="left", border_style="bold red"))
    return 0
