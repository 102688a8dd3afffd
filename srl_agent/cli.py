"""The `srl-agent` command line: argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import UserError

console = Console(stderr=True, soft_wrap=True)  # error lines stay whole for grep
out = Console()


def _add_source_options(p: argparse.ArgumentParser) -> None:
    from .formats import FORMATS

    p.add_argument("--trajectories", nargs="+", required=True, metavar="PATH",
                   help="trajectory files or folders (.traj, .json, .jsonl, .parquet) or hf:OWNER/NAME[@SPLIT]")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="source format (default: detect)")
    p.add_argument("--only-resolved", action="store_true", help="keep only trajectories marked resolved")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed records, report them, and go on")


def _add_reward_options(p: argparse.ArgumentParser) -> None:
    from .actions import CALL_STYLES
    from .reward import GRANULARITIES, METRICS

    p.add_argument("--metric", default="difflib", choices=METRICS)
    p.add_argument("--granularity", default="string", choices=GRANULARITIES)
    p.add_argument("--autojunk", action=argparse.BooleanOptionalAction, default=False,
                   help="difflib's autojunk (default off; on is the paper-literal SequenceMatcher(None, a, b))")
    p.add_argument("--call-style", default="hermes", choices=CALL_STYLES)


def build_parser() -> argparse.ArgumentParser:
    from .actions import CALL_STYLES

    parser = argparse.ArgumentParser(prog="srl-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"srl-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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

    convert = data_sub.add_parser("convert", help="trajectories of any format -> canonical trajectories JSONL")
    _add_source_options(convert)
    convert.add_argument("--out", required=True)

    stats = data_sub.add_parser("stats", help="summarise a steps.jsonl")
    stats.add_argument("steps")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")

    show = data_sub.add_parser("show", help="pretty-print one example of a steps.jsonl")
    show.add_argument("steps")
    show.add_argument("--index", type=int, default=0, help="0-based example index")
    show.add_argument("--trajectory", help="pick by trajectory id (with --step)")
    show.add_argument("--step", type=int, default=0)
    show.add_argument("--rendered", action="store_true", help="print the exact chat-template prompt text")
    show.add_argument("--tokenizer", default="tiny")

    reward = sub.add_parser("reward", help="score completions against expert actions")
    reward.add_argument("--expert", help="expert tool call as JSON ({\"name\":...,\"arguments\":{...}}) or @FILE")
    reward.add_argument("--completion", help="the policy's answer text, or - for stdin")
    reward.add_argument("--batch", metavar="JSONL", help="rows with 'completion' and 'expert_action'")
    reward.add_argument("--out", help="with --batch: write the rows with a 'reward' field here")
    reward.add_argument("--workers", type=int, default=1)
    _add_reward_options(reward)
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
    _add_engine_option(replay)
    replay.add_argument("--timeout", type=float, default=120, help="seconds per tool call")
    replay.add_argument("--threshold", type=float, default=0.9, help="similarity below which a step diverges")
    replay.add_argument("--network", action="store_true", help="give the sandbox network access")

    train = sub.add_parser("train", help="SRL (GRPO with dynamic sampling), SFT or RLVR (episodes in sandboxes)")
    train.add_argument("--env", default="swe", choices=["swe"], help="the task family (software engineering)")
    train.add_argument("--config", help="YAML config (default: configs/tiny.yaml, CPU, minutes)")
    train.add_argument("--method", choices=["srl", "sft", "rlvr", "srl+rlvr"])
    train.add_argument("--model", help="tiny, a local path or a hub id")
    train.add_argument("--trajectories", nargs="+", metavar="PATH", help="trajectory sources or a steps.jsonl")
    train.add_argument("--output-dir")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--init-from", help="start from this checkpoint (SFT -> SRL, SRL -> RLVR)")
    train.add_argument("--tasks", metavar="FILE", help="RLVR training tasks: a swebench-5 instances file "
                       "(default: swe-mini's train split)")
    train.add_argument("--workers", type=int, help="RLVR: sandboxes run at the same time (episodes.workers)")
    train.add_argument("--executor", choices=["local", "ray"],
                       help="RLVR: sandboxes on this machine or on Ray nodes (episodes.executor)")
    train.add_argument("--address", dest="ray_address", metavar="HOST:PORT",
                       help="--executor ray: the cluster (episodes.ray_address; default RAY_ADDRESS, else a local one)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    again.add_argument("--overwrite", action="store_true",
                       help="remove an earlier run's checkpoints and metrics from --output-dir and start over")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field")
    train.add_argument("--no-plot", action="store_true", help="do not write curves.png at the end")
    train.add_argument("--dry-run", action="store_true",
                       help="print the per-GPU memory plan (no weights load) and whether the run fits")
    train.add_argument("--gpus", type=int, default=1, help="--dry-run: GPUs in the cluster (all nodes)")
    train.add_argument("--gpu-memory", type=float, default=80, metavar="GB", help="--dry-run: memory of one GPU")
    train.add_argument("--engine", choices=["ddp", "fsdp2", "zero3"], help="--dry-run: the engine to plan for "
                       "(default: fsdp2 on several GPUs, else ddp)")
    train.add_argument("--ignore-memory-plan", action="store_true",
                       help="start a run even when the memory plan says it does not fit the GPUs")

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

    serve = sub.add_parser("serve", help="serve a checkpoint behind an OpenAI-compatible chat API")
    serve.add_argument("--model", required=True, help="checkpoint folder or hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    plot = sub.add_parser("plot", help="write a run's training curves as PNG")
    plot.add_argument("run_dir")
    plot.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")

    env = sub.add_parser("env", help="sandbox images")
    env_sub = env.add_subparsers(dest="env_command", required=True)
    env_build = env_sub.add_parser("build", help="build a sandbox image (offline when no registry answers)")
    env_build.add_argument("name", choices=["swe", "swe-mini"], nargs="?",
                           help="swe: the agent sandbox; swe-mini: one image per swe-mini task (built on swe); "
                                "none with --instances FILE: one image per instance of FILE (built on swe)")
    env_build.add_argument("--base", default=None,
                           help="base image of the swe image (default python:3.11-slim); swe-mini builds on swe")
    env_build.add_argument("--offline", action="store_true", help="build the base with debootstrap, no registry")
    env_build.add_argument("--mirror", help="Debian mirror for the offline base (default: the one apt uses)")
    env_build.add_argument("--tag", default=None, help="swe: image tag (default srl-agent/swe:latest)")
    env_build.add_argument("--instances", nargs="+", metavar="ID|FILE",
                           help="swe-mini: only these tasks; without a name: an instances file whose rows have a "
                                "`source` (git repository, folder or sdist) and a `bug_patch`, then optionally IDs")
    env_build.add_argument("--rebuild", action="store_true", help="swe-mini: rebuild images that are up to date")
    env_copy = env_sub.add_parser("copy", help="copy images from the local Docker engine to another engine (offline)")
    env_copy.add_argument("images", nargs="+", metavar="IMAGE",
                          help="image tags; `swe` and `swe-mini` name the agent image and every swe-mini task image")
    env_copy.add_argument("--to", required=True, metavar="podman|URL",
                          help="`podman` (its rootless socket) or an engine URL (unix://…, tcp://…, ssh://…)")

    tasks = sub.add_parser("tasks", help="the task factory: synthesize bug-fix tasks from a repository's tests")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", required=True)
    synth = tasks_sub.add_parser("synthesize", help="mutate a repository, keep bugs its tests catch, write instances "
                                                    "and expert trajectories")
    synth.add_argument("--repo", nargs="+", default=[], metavar="PATH",
                       help="git repositories, source folders or sdists (.tar.gz)")
    synth.add_argument("--pypi", nargs="+", default=[], metavar="NAME==VERSION",
                       help="download these sdists first (pip download --no-binary :all: --no-deps)")
    synth.add_argument("--out", required=True, help="the task folder (tasks/NAME); a rerun resumes it")
    synth.add_argument("--max-tasks", type=int, default=5, help="accepted tasks per repository")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--attempts-per-task", type=int, default=4, help="mutations tried per task wanted")
    synth.add_argument("--workers", type=int, default=2, help="sandboxes at once")
    synth.add_argument("--max-fail-fraction", type=float, default=0.5,
                       help="drop a mutation that fails more than this fraction of the suite")
    synth.add_argument("--test-timeout", type=float, default=120, help="seconds per run of the suite")
    synth.add_argument("--writer", metavar="URL", help="an OpenAI-compatible …/v1 that rewrites problem statements")
    synth.add_argument("--writer-model", default="default")
    synth.add_argument("--no-expert", dest="expert", action="store_false",
                       help="write instances only: no images, no expert trajectories")
    split = tasks_sub.add_parser("split", help="hold whole repositories out of training")
    split.add_argument("tasks", help="a task folder (instances.jsonl, trajectories.jsonl)")
    split.add_argument("--out", required=True, help="writes OUT/train and OUT/test")
    split.add_argument("--holdout", nargs="+", metavar="REPO", help="repositories for the test side")
    split.add_argument("--fraction", type=float, default=0.25, help="without --holdout: this share of repositories")
    split.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("eval", help="solve benchmark instances with a model and grade them with swebench")
    ev.add_argument("--bench", default="swe-verified",
                    help="swe-verified, swe-bench-lite, swe-mini (offline), a hub dataset id or a local "
                         ".json/.jsonl/.parquet of swebench instances")
    ev.add_argument("--model",
                    help="checkpoint folder, hub id, OpenAI-compatible URL (http://host:port/v1), gold (the gold "
                         "patches), or replay:TRAJECTORIES (replay recorded expert runs)")
    ev.add_argument("--predictions", metavar="FILE",
                    help="grade these predictions (JSONL: instance_id, model_patch, model_name_or_path); no agent runs")
    ev.add_argument("--mode", default="agent", choices=["agent", "oracle-file-edit"])
    ev.add_argument("--instances", nargs="+", metavar="ID", help="only these instance ids")
    ev.add_argument("--split", default="test")
    ev.add_argument("--workers", type=int, default=1, help="instances at once, each in its own sandbox")
    ev.add_argument("--run-id", help="names the run folder; pass an earlier run's id to resume it")
    ev.add_argument("--output-dir", default="runs/eval")
    ev.add_argument("--max-steps", type=int, default=50, help="tool calls per instance")
    ev.add_argument("--max-new-tokens", type=int, default=1024, help="tokens per answer")
    ev.add_argument("--max-context-tokens", type=int,
                    help="stop an instance when its prompt grows past this (default: the model's context window "
                         "less --max-new-tokens; a served model's own refusal also stops it)")
    ev.add_argument("--history", help="earlier steps in each prompt: last-N, N or full (default: as the checkpoint "
                                      "was trained, from its rendering.json)")
    ev.add_argument("--max-observation-chars", type=int,
                    help="tool outputs in the prompt are cut in the middle to this (default: as trained)")
    ev.add_argument("--call-style", choices=CALL_STYLES, help="how the model writes calls (default: as trained)")
    ev.add_argument("--temperature", type=float, default=0.0)
    ev.add_argument("--time-limit", type=float, default=1800, help="seconds per instance")
    ev.add_argument("--step-timeout", type=float, default=120, help="seconds per tool call")
    ev.add_argument("--grade-timeout", type=int, default=900, help="seconds the harness gives one instance")
    ev.add_argument("--no-grade", dest="grade", action="store_false", help="write predictions only")
    ev.add_argument("--retry-errors", action="store_true", help="on resume, rerun instances that crashed")
    ev.add_argument("--sandbox", default="docker", choices=["docker", "podman"], help="container engine kind")
    _add_engine_option(ev)
    ev.add_argument("--executor", default="local", choices=["local", "ray"],
                    help="local: worker threads here; ray: Ray tasks, each on its node's own engine")
    ev.add_argument("--address", dest="ray_address", metavar="HOST:PORT",
                    help="--executor ray: the cluster (default RAY_ADDRESS, else a local one)")
    ev.add_argument("--image-template", metavar="TEMPLATE",
                    help="instance images by name, for solving and grading: {instance_id}, {id_docker}, {repo}, "
                         "{version} (e.g. ghcr.io/epoch-research/swe-bench.eval.x86_64.{instance_id})")
    return parser


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", metavar="URL",
                   help="container engine of the sandboxes: unix://…, tcp://… (TLS from DOCKER_TLS_VERIFY and "
                        "DOCKER_CERT_PATH), ssh://user@host; default DOCKER_HOST or the local engine (podman: its own)")


# --- commands ---------------------------------------------------------------------------------

def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[examples]} examples"), TimeElapsedColumn(), console=console,
                    transient=False)


def cmd_data_build(args: argparse.Namespace) -> int:
    from .data import build_steps
    from .steps import StepConfig, parse_history

    try:
        history = parse_history(args.history)
    except ValueError as e:
        raise UserError(str(e)) from None
    cfg = StepConfig(history=history, max_observation_chars=args.max_observation_chars, call_style=args.call_style)
    tokenizer = None if args.tokenizer.lower() == "none" else args.tokenizer
    with _progress() as progress:
        task = progress.add_task("building examples", total=None, examples=0)
        made = [0]

        def tick(n: int) -> None:
            made[0] += n
            progress.update(task, advance=1, examples=made[0])

        report = build_steps(args.trajectories, args.out, cfg, tokenizer=tokenizer,
                             max_prompt_tokens=args.max_prompt_tokens, fmt=args.format,
                             only_resolved=args.only_resolved, skip_bad=args.skip_bad, workers=args.workers,
                             on_trajectory=tick, log=lambda m: progress.console.print(m, markup=False))
    _print_skipped(report.load.skipped)
    extra = f", {report.dropped_too_long} over --max-prompt-tokens dropped" if report.dropped_too_long else ""
    console.print(f"{report.load.summary()}; {report.examples} examples written to {args.out}{extra}")
    return 0


def _print_skipped(skipped: list[str]) -> None:
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} bad record(s):[/]")
        for reason in skipped:
            console.print(f"  - {reason}", markup=False, highlight=False)


def cmd_data_convert(args: argparse.Namespace) -> int:
    from .data import convert_trajectories

    report = convert_trajectories(args.trajectories, args.out, fmt=args.format, skip_bad=args.skip_bad,
                                  only_resolved=args.only_resolved)
    _print_skipped(report.skipped)
    console.print(f"{report.summary()}; written to {args.out}")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .data import steps_stats

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

    from .actions import render_command_line
    from .data import find_example
    from .steps import render_prompt
    from .tokenizer import load_tokenizer

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


def _read_expert(value: str):
    from .types import ToolCall

    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return ToolCall.from_dict(json.loads(text))
    except (json.JSONDecodeError, ValueError) as e:
        raise UserError(f"--expert is not a tool call JSON object: {e}") from None


def cmd_reward(args: argparse.Namespace) -> int:
    from .reward import RewardConfig, explain_reward

    cfg = RewardConfig(args.metric, args.granularity, args.autojunk, args.call_style)
    if args.batch:
        return _reward_batch(args, cfg)
    if args.expert is None or args.completion is None:
        raise UserError("give --expert and --completion, or --batch FILE")
    completion = sys.stdin.read() if args.completion == "-" else args.completion
    value, reason = explain_reward(completion, _read_expert(args.expert), cfg)
    console.print(reason, markup=False, highlight=False)
    print(f"{value:.6f}")
    return 0


def _reward_batch(args: argparse.Namespace, cfg) -> int:
    from .errors import DataError
    from .jsonio import read_jsonl, write_jsonl
    from .reward import expert_from, srl_rewards

    rows, completions, experts = [], [], []
    for lineno, row in read_jsonl(args.batch):
        try:
            expert = row["expert_action"]
            experts.append(expert_from(expert))
            completions.append(str(row["completion"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"needs 'completion' and 'expert_action' ({type(e).__name__}: {e})",
                            source=args.batch, row=lineno) from None
        rows.append(row)
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


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.text import Text

    from .formats import load_trajectories
    from .replay import observation_diff, replay, write_html
    from .sandbox import SandboxConfig, open_sandbox

    trajs = list(load_trajectories([args.trajectory]))
    if not 0 <= args.index < len(trajs):
        raise UserError(f"{args.trajectory}: has {len(trajs)} trajectories; --index {args.index} is out of range")
    traj = trajs[args.index]
    config = SandboxConfig(workdir=args.workdir, network=args.network, engine=args.engine)
    if args.image:
        config.image = args.image
    elif not args.repo and traj.id.startswith("swemini__"):  # a swe-mini run: its task's own image
        from .bench.swe_mini import image_name

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


def cmd_env_build(args: argparse.Namespace) -> int:
    from .images import DEFAULT_BASE, SWE_IMAGE, build_swe_image, image_is_current
    from .sandbox.docker import docker_client

    client = docker_client(timeout=600)
    log = lambda m: console.print(m, markup=False)  # noqa: E731
    if args.name is None:
        from .tasks.instances import build_images, load_task_instances

        if not args.instances:
            raise UserError("env build: name an image (swe, swe-mini) or pass --instances FILE")
        instances = load_task_instances(args.instances[0], args.instances[1:])
        if not image_is_current(client, SWE_IMAGE):
            build_swe_image(client, base=args.base or DEFAULT_BASE, offline=args.offline, mirror=args.mirror, log=log)
        with _bar("task images", len(instances)) as tick:
            built = build_images(client, args.instances[0], instances, SWE_IMAGE, rebuild=args.rebuild,
                                 progress=lambda m: tick(m))
        console.print(f"{len(built)} built, {len(instances) - len(built)} up to date")
        return 0
    if args.name == "swe-mini":
        from .bench.swe_mini import build_images, load_instances

        base = SWE_IMAGE
        if not image_is_current(client, base):
            build_swe_image(client, base=args.base or DEFAULT_BASE, offline=args.offline, mirror=args.mirror, log=log)
        instances = load_instances(args.instances)
        with _bar("swe-mini images", len(instances)) as tick:
            built = build_images(client, instances, base, rebuild=args.rebuild, progress=lambda m: tick(m))
        console.print(f"{len(built)} built, {len(instances) - len(built)} up to date")
        return 0
    tag = build_swe_image(client, base=args.base or DEFAULT_BASE, tag=args.tag or SWE_IMAGE,
                          offline=args.offline, mirror=args.mirror, log=log)
    console.print(f"built {tag}")
    return 0


def cmd_env_copy(args: argparse.Namespace) -> int:
    from .sandbox.docker import docker_client
    from .sandbox.engine import copy_images, engine_client, expand_image_names, podman_client

    target = podman_client() if args.to == "podman" else engine_client(args.to)
    copied = copy_images(expand_image_names(args.images), docker_client(), target,
                         log=lambda m: console.print(m, markup=False))
    console.print(f"{len(copied)} copied to {args.to}")
    return 0


def _bars():
    """Progress bars with a free-text `info` field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=console)


@contextlib.contextmanager
def _bar(description: str, total: int):
    """One progress bar; the yielded `tick(info)` advances it by one."""
    with _bars() as progress:
        task = progress.add_task(description, total=total, info="")
        yield lambda info="": progress.update(task, advance=1, info=info)


def cmd_tasks_synthesize(args: argparse.Namespace) -> int:
    from .tasks.synthesize import Progress, SourceSpec, SynthesizeConfig, synthesize

    if not args.repo and not args.pypi:
        raise UserError("tasks synthesize: pass --repo PATH or --pypi NAME==VERSION")
    cfg = SynthesizeConfig(out=Path(args.out), max_tasks=args.max_tasks, seed=args.seed,
                           attempts_per_task=args.attempts_per_task, workers=args.workers,
                           max_fail_fraction=args.max_fail_fraction, test_timeout=args.test_timeout,
                           writer=args.writer, writer_model=args.writer_model, expert=args.expert)

    class Bars(Progress):
        def log(self, message: str) -> None:
            console.print(message, markup=False, highlight=False)

        def bar(self, description: str, total: int):
            return _bar(description, total)

    sources = [SourceSpec(p) for p in args.repo] + [SourceSpec(f"pypi:{p}") for p in args.pypi]
    summary = synthesize(sources, cfg, Bars())
    for repo in summary["repos"]:
        if repo["skipped"]:
            out.print(f"{repo['repo']}: skipped ({repo['skipped']})", markup=False)
        else:
            out.print(f"{repo['repo']}: {repo['accepted']} tasks from {repo['tried']} mutations in "
                      f"{repo['seconds']:.0f}s; kinds {repo['kinds']}", markup=False, highlight=False)
    if "expert_solved" in summary:
        out.print(f"expert: {summary['expert_solved']} solved, {len(summary['expert_failed'])} failed")
    out.print(f"{summary['instances']} instances in {cfg.out / 'instances.jsonl'}; train with "
              f"`srl-agent train --env swe --trajectories {cfg.out}`", markup=False, highlight=False)
    return 0


def cmd_tasks_split(args: argparse.Namespace) -> int:
    from .tasks.split import split_folder

    counts = split_folder(Path(args.tasks), Path(args.out), args.holdout, args.fraction, args.seed)
    for side, info in counts.items():
        out.print(f"{side}: {info['instances']} instances, {info['trajectories']} trajectories from "
                  f"{', '.join(info['repos']) or 'no repositories'} -> {Path(args.out) / side}", markup=False)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import time

    from .agent import AgentConfig, rendering_for
    from .bench.eval import GOLD, EvalConfig, PredictionLog, load_instances, read_predictions, run_eval
    from .policy import load_policy

    imported = read_predictions(args.predictions) if args.predictions else []
    if imported and args.model:
        raise UserError("--predictions grades patches made elsewhere; leave out --model")
    if not imported and not args.model:
        raise UserError("eval needs --model (or --predictions FILE to grade existing patches)")
    if imported:  # grade exactly these, under the name they were made with
        args.model = imported[0]["model_name_or_path"]
        args.instances = args.instances or [row["instance_id"] for row in imported]

    agent = AgentConfig(max_steps=args.max_steps, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        time_limit=args.time_limit, step_timeout=args.step_timeout,
                        max_context_tokens=args.max_context_tokens)
    cfg = EvalConfig(bench=args.bench, model=args.model, mode=args.mode, instances=args.instances, split=args.split,
                     workers=args.workers, run_id=args.run_id or time.strftime("%Y%m%d-%H%M%S"),
                     output_dir=args.output_dir, grade=args.grade, grade_timeout=args.grade_timeout,
                     retry_errors=args.retry_errors, agent=agent, sandbox=args.sandbox, engine=args.engine,
                     executor=args.executor, ray_address=args.ray_address, image_template=args.image_template)
    instances = load_instances(cfg)
    run_dir = Path(cfg.output_dir) / cfg.run_id
    if imported:
        run_dir.mkdir(parents=True, exist_ok=True)
        log = PredictionLog(run_dir / "predictions.jsonl")
        wanted = {i["instance_id"] for i in instances}
        for row in imported:
            if row["instance_id"] in wanted and row["instance_id"] not in log.rows:
                log.append(row)
    done = len({i["instance_id"] for i in instances}
               & PredictionLog(run_dir / "predictions.jsonl").finished(cfg.retry_errors))
    policy = None if cfg.model == GOLD or done == len(instances) else load_policy(cfg.model)
    if policy is not None and cfg.mode == "agent":  # prompts shaped as in training
        agent.rendering = rendering_for(cfg.model, policy, lambda m: console.print(m, markup=False, highlight=False),
                                        args.history, args.max_observation_chars, args.call_style)
    how = "the gold patches" if cfg.model == GOLD else (
        f"grading {args.predictions} only: no agent ran" if imported else cfg.mode)
    console.print(f"[bold]eval[/] {cfg.model} ({how}) on {cfg.bench}: {len(instances)} instances, "
                  f"{cfg.workers} workers -> {run_dir}  (resume: --run-id {cfg.run_id})", highlight=False)
    with _bars() as progress:
        solving = progress.add_task("solve", total=len(instances), completed=done, info="")
        grading = progress.add_task("grade", total=len(instances), info="", visible=cfg.grade)
        statuses: dict[str, int] = {}

        def solved(row: dict) -> None:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            progress.update(solving, advance=1, info=" ".join(f"{k} {v}" for k, v in sorted(statuses.items())))

        summary = run_eval(cfg, policy, instances, run_dir, on_solved=solved,
                           on_graded=lambda n: progress.update(grading, completed=n),
                           log=lambda m: progress.console.print(m, markup=False))
        progress.update(solving, completed=len(instances))
        progress.update(grading, completed=len(instances))
    _print_eval_summary(summary, run_dir)
    return 0


def _print_eval_summary(summary: dict, run_dir: Path) -> None:
    from rich.table import Table

    table = Table(title="swebench evaluation")
    for column in ("instances", "resolved", "patch applied", "empty patches", "mean steps", "mean tokens"):
        table.add_column(column, justify="right")
    table.add_row(str(summary["instances"]), f"{summary['resolved']} ({summary['resolved_pct']}%)",
                  f"{summary['patch_applied_pct']}%", str(summary["empty_patches"]),
                  *("-" if summary[k] is None else str(summary[k]) for k in ("mean_steps", "mean_completion_tokens")))
    out.print(table)
    outcomes = Table(title="outcomes")
    outcomes.add_column("category")
    outcomes.add_column("instances", justify="right")
    for name, count in sorted(summary["outcomes"].items(), key=lambda kv: -kv[1]):
        outcomes.add_row(name, str(count))
    for name, count in sorted(summary["agent_exit"].items(), key=lambda kv: -kv[1]):
        outcomes.add_row(f"agent: {name}", str(count))
    out.print(outcomes)
    out.print(f"run: {run_dir}  (predictions.jsonl, results.jsonl, summary.json, logs/)")


def train_config(args: argparse.Namespace):
    from .train.config import TrainConfig

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig.builtin()
    flags = {"method": args.method, "model": args.model, "trajectories": args.trajectories,
             "output_dir": args.output_dir, "max_steps": args.max_steps, "seed": args.seed,
             "init_from": args.init_from, "tasks": args.tasks}
    for key, value in flags.items():
        if value is not None:
            setattr(cfg, key, value)
    for name in ("workers", "executor", "ray_address"):
        if getattr(args, name) is not None:
            setattr(cfg.episodes, name, getattr(args, name))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set needs KEY=VALUE, got {item!r}")
        cfg.set(key.strip(), value)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .plot import plot_run
    from .train.engine import engine_name
    from .train.trainer import Trainer

    cfg = train_config(args)
    if args.dry_run:
        from .train.plan import dry_run

        report, fits = dry_run(cfg, args.gpus, args.gpu_memory, args.engine)
        console.print(report, markup=False, highlight=False)
        return 0 if fits else 1
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite, check_memory=not args.ignore_memory_plan,
                      log=lambda m: console.print(m, markup=False, highlight=False))
    if not trainer.main:  # other processes of a multi-process run work silently
        trainer.run()
        return 0
    console.print(f"[bold]{cfg.method.upper()}[/] {cfg.model} on {' '.join(cfg.trajectories)} -> {cfg.output_dir}"
                  + (f" ({trainer.world} processes, {engine_name(trainer.accelerator)})" if trainer.world > 1 else ""))
    console.print(f"{len(trainer.train_examples)} training steps, {len(trainer.val_examples)} held-out steps; "
                  f"{sum(p.numel() for p in trainer.model.parameters()):,} parameters on {trainer.device}")
    if trainer.tasks:
        console.print(f"{len(trainer.tasks)} RLVR tasks ({cfg.tasks or 'swe-mini train split'}), "
                      f"{cfg.episodes.group_size} episodes each, {cfg.episodes.workers} sandboxes at a time")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=cfg.max_steps, completed=trainer.step, info="")

        def on_step(row: dict) -> None:
            info = f"{row['phase']} loss {row.get('loss', float('nan')):.3f}"
            if row["phase"] == "srl":
                info += f" reward {row['reward_mean']:+.3f} fill {row['fill_ratio']:.2f}"
            if row["phase"] == "rlvr":
                info += (f" reward {row['rlvr_reward_mean']:+.3f} resolved {row['rlvr_resolve_rate']:.2f} "
                         f"fill {row['fill_ratio']:.2f}")
            if "val_reward" in row:
                info += f" val {row['val_reward']:+.3f}"
            info += f" {row['tokens_per_s']:.0f} tok/s"
            progress.update(task, completed=row["step"], info=info)

        summary = trainer.run(on_step)
    console.print(f"run: {summary['run_dir']}  (metrics.jsonl, tensorboard/)")
    if not args.no_plot:
        console.print(f"curves: {plot_run(summary['run_dir'])}")
    best = (f"best checkpoint: {summary['best']} (val reward {summary['best_val_reward']:+.3f})" if summary["best"]
            else "no best checkpoint (no held-out trajectories: val_trajectories=0)")
    console.print(f"{best}; latest: {summary['latest']}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .agent import rendering_for
    from .formats import load_trajectories
    from .paths import project_dir
    from .policy import SamplingParams, load_policy
    from .probe import config_rendering, probe, sample_examples
    from .reward import RewardConfig

    if args.prompts < 1 or args.samples < 1:
        raise UserError("-n and --samples must be at least 1")
    trajectories = list(load_trajectories(args.trajectories or [str(project_dir("trajectories"))]))
    policy = load_policy(args.model)
    log = lambda m: console.print(m, markup=False, highlight=False)  # noqa: E731
    rendering = rendering_for(args.model, policy, log, args.history, args.max_observation_chars, args.call_style,
                              base=config_rendering(args.config, policy, log) if args.config else None)
    examples = sample_examples(trajectories, rendering, args.prompts, args.seed)
    params = SamplingParams(args.samples, args.temperature, 1.0, args.max_new_tokens)
    report = probe(policy, examples, RewardConfig(call_style=rendering.call_style), params)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from .policy.hf import HFPolicy
    from .policy.server import make_server

    server = make_server(HFPolicy.from_pretrained(args.model), args.model, args.host, args.port)
    console.print(f"serving {args.model} at http://{args.host}:{server.server_address[1]}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_run

    console.print(f"wrote {plot_run(args.run_dir, args.out)}")
    return 0


COMMANDS = {
    ("data", "build"): cmd_data_build,
    ("data", "convert"): cmd_data_convert,
    ("data", "stats"): cmd_data_stats,
    ("data", "show"): cmd_data_show,
    ("reward", None): cmd_reward,
    ("replay", None): cmd_replay,
    ("env", "build"): cmd_env_build,
    ("env", "copy"): cmd_env_copy,
    ("eval", None): cmd_eval,
    ("tasks", "synthesize"): cmd_tasks_synthesize,
    ("tasks", "split"): cmd_tasks_split,
    ("train", None): cmd_train,
    ("plot", None): cmd_plot,
    ("serve", None): cmd_serve,
    ("probe", None): cmd_probe,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = COMMANDS[(args.command, getattr(args, "data_command", None) or getattr(args, "env_command", None)
                        or getattr(args, "tasks_command", None))]
    # A plain `kill` ends the run like Ctrl-C does: sandboxes are closed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return handler(args)
    except UserError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
