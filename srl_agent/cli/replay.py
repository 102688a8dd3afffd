"""`srl-agent replay`: re-run an expert trajectory's tool calls in a sandbox (the work: srl_agent.replay)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .common import add_engine_option, console, out


def add_parser(sub) -> None:
    replay = sub.add_parser("replay", help="re-run an expert trajectory's tool calls in a sandbox")
    replay.add_argument("trajectory", help="a trajectory file of any supported format")
    replay.add_argument("--index", type=int, default=0, help="which trajectory of a multi-record file (0-based)")
    replay.add_argument("--step", type=int, help="stop after this step (1-based)")
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--repo", help="a local checkout of the task's repository, copied into the sandbox")
    where.add_argument("--image", help="a Docker image that already holds the repository at the workdir")
    replay.add_argument("--workdir", default="/testbed", help="where the repository lives in the sandbox")
    replay.add_argument("--html", help="also write a self-contained HTML report here")
    replay.add_argument("--sandbox", default="auto", choices=["auto", "docker", "podman", "bwrap"])
    add_engine_option(replay)
    replay.add_argument("--timeout", type=float, default=120, help="seconds per tool call")
    replay.add_argument("--threshold", type=float, default=0.9, help="similarity below which a step diverges")
    replay.add_argument("--network", action="store_true", help="give the sandbox network access")
    replay.set_defaults(handler=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.text import Text

    from ..formats import load_trajectories
    from ..replay import observation_diff, replay, write_html
    from ..sandbox import SandboxConfig, open_sandbox

    trajs = list(load_trajectories([args.trajectory]))
    if not 0 <= args.index < len(trajs):
        raise UserError(f"{args.trajectory}: has {len(trajs)} trajectories; --index {args.index} is out of range")
    traj = trajs[args.index]
    config = SandboxConfig(workdir=args.workdir, network=args.network, engine=args.engine)
    if args.image:
        config.image = args.image
    elif not args.repo and traj.id.startswith("swemini__"):  # a swe-mini run: its task's own image
        from ..testbed.swe_mini import image_name

        config.image = image_name(traj.id)
    out.print(f"[bold]Replaying {traj.id}[/] ({len(traj.steps)} steps, {traj.source_format})")

    def show(step) -> None:
        color = "green" if step.similarity >= 0.999 else "yellow" if step.similarity >= args.threshold else "red"
        body = Text()
        if step.thought:
            body.append(step.thought.strip()[:600] + "\n\n", style="dim italic")
        body.append(f"$ {step.command[:800]}\n", style="bold")
        body.append(f"exit {step.actual.exit_code}{' (timed out)' if step.actual.timed_out else ''}, "
                    f"{step.actual.duration:.2f}s, similarity {step.similarity:.3f}\n", style=color)
        if step.similarity < 0.999:
            for line in observation_diff(step.recorded, step.actual.output, max_lines=30):
                body.append(line + "\n", style="green" if line.startswith("+") else "red" if line.startswith("-")
                            else "")
        title = f"step {step.index + 1}/{len(traj.steps)}: {step.action.name}"
        if step.diverged:
            title += "  ◀ FIRST DIVERGENCE"
        out.print(Panel(body, title=title, title_align="left", border_style="bold red" if step.diverged else color))

    with open_sandbox(config, kind=args.sandbox, repo=args.repo) as sandbox:
        result = replay(traj, sandbox, last_step=args.step, timeout=args.timeout, threshold=args.threshold,
                        on_step=show)
    out.print(Panel(Text(result.final_patch or "(empty)"), title="final diff", title_align="left"))
    if args.html:
        write_html(result, args.html, args.threshold)
        console.print(f"HTML report: {args.html}")
    divergence = "none" if result.first_divergence is None else f"step {result.first_divergence + 1}"
    verdict = {True: "matches the recorded patch", False: "DIFFERS from the recorded patch",
               None: "no recorded patch to compare"}[result.patch_matches]
    out.print(f"first divergence: {divergence}; final diff {verdict}")
    return 0 if result.ok else 1
