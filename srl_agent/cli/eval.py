"""`srl-agent eval`: solve benchmark instances with a model and grade them with swebench (the work: srl_agent.bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..sandbox import DEFAULT_DISK_MB
from .common import add_engine_option, bars, console, log, out


def add_parser(sub) -> None:
    from ..actions import CALL_STYLES

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
    ev.add_argument("--batch-size", type=int, metavar="N",
                    help="most prompts in one generate call of an in-process model (default: every waiting worker's)")
    ev.add_argument("--batch-wait", type=float, metavar="SECONDS",
                    help="in-process model: the longest a prompt waits for the other workers' before its batch goes "
                         "(default 1; also at most half the last batch's generation time)")
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
    ev.add_argument("--grade-timeout", type=int, default=900, help="seconds one instance's tests may run when graded")
    ev.add_argument("--grading", default="sandbox", choices=["sandbox", "harness"],
                    help="sandbox: tests run in hardened sandboxes (no network, no capabilities, limits, non-root "
                         "where the image allows), graded by swebench's report code; harness: the official swebench "
                         "harness (its containers run as root with the network)")
    ev.add_argument("--grading-network", action="store_true",
                    help="--grading sandbox: give the tests the network (benchmarks whose eval scripts download, "
                         "e.g. SWE-bench's reinstall with pip)")
    ev.add_argument("--disk-mb", type=int, default=DEFAULT_DISK_MB,
                    help="disk budget of each sandbox, solving and grading, in MiB (default %(default)s)")
    ev.add_argument("--no-grade", dest="grade", action="store_false", help="write predictions only")
    ev.add_argument("--retry-errors", action="store_true", help="on resume, rerun instances that crashed")
    ev.add_argument("--sandbox", default="docker", choices=["docker", "podman"], help="container engine kind")
    add_engine_option(ev)
    ev.add_argument("--executor", default="local", choices=["local", "ray"],
                    help="local: worker threads here; ray: Ray tasks, each on its node's own engine")
    ev.add_argument("--address", dest="ray_address", metavar="HOST:PORT",
                    help="--executor ray: the cluster (default RAY_ADDRESS, else a local one)")
    ev.add_argument("--image-template", metavar="TEMPLATE",
                    help="instance images by name, for solving and grading: {instance_id}, {id_docker}, {repo}, "
                         "{version} (e.g. ghcr.io/epoch-research/swe-bench.eval.x86_64.{instance_id})")
    ev.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..agent import rendering_for
    from ..bench.eval import (
        GOLD,
        InstanceLog,
        import_predictions,
        load_instances,
        read_predictions,
        run_eval,
    )
    from ..policy import load_policy

    if args.grading_network and args.grading == "harness":
        raise UserError("--grading-network is for --grading sandbox; the harness's containers always have the network")
    imported = read_predictions(args.predictions) if args.predictions else []
    if imported and args.model:
        raise UserError("--predictions grades patches made elsewhere; leave out --model")
    if not imported and not args.model:
        raise UserError("eval needs --model (or --predictions FILE to grade existing patches)")
    if imported:  # grade exactly these, under the name they were made with
        args.model = imported[0]["model_name_or_path"]
        args.instances = args.instances or [row["instance_id"] for row in imported]

    cfg = _eval_config(args)
    instances = load_instances(cfg)
    run_dir = Path(cfg.output_dir) / cfg.run_id
    if imported:
        import_predictions(imported, instances, run_dir)
    done = len({i["instance_id"] for i in instances}
               & InstanceLog(run_dir / "predictions.jsonl").finished(cfg.retry_errors))
    policy = None if cfg.model == GOLD or done == len(instances) else load_policy(cfg.model)
    if policy is not None and cfg.mode == "agent":  # prompts shaped as in training
        cfg.agent.rendering = rendering_for(cfg.model, policy, log, args.history, args.max_observation_chars,
                                            args.call_style)
    how = "the gold patches" if cfg.model == GOLD else (
        f"grading {args.predictions} only: no agent ran" if imported else cfg.mode)
    console.print(f"[bold]eval[/] {cfg.model} ({how}) on {cfg.bench}: {len(instances)} instances, "
                  f"{cfg.workers} workers -> {run_dir}  (resume: --run-id {cfg.run_id})", highlight=False)
    with bars() as progress:
        solving = progress.add_task("solve", total=len(instances), completed=done, info="")
        grading = progress.add_task("grade", total=len(instances), info="", visible=cfg.grade)
        statuses: dict[str, int] = {}

        def solved(row: dict) -> None:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            progress.update(solving, advance=1, info=" ".join(f"{k} {v}" for k, v in sorted(statuses.items())))

        summary = run_eval(cfg, policy, instances, run_dir, on_solved=solved,
                           on_graded=lambda n: progress.update(grading, completed=n),
                           log=log)
        progress.update(solving, completed=len(instances))
        progress.update(grading, completed=len(instances))
    _print_summary(summary, run_dir)
    return 0

def _eval_config(args: argparse.Namespace):
    """The EvalConfig the flags ask for."""
    import time
    from dataclasses import replace

    from ..agent import AgentConfig
    from ..bench.eval import EVAL_BATCHING, EvalConfig

    agent = AgentConfig(max_steps=args.max_steps, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        time_limit=args.time_limit, step_timeout=args.step_timeout,
                        max_context_tokens=args.max_context_tokens)
    return EvalConfig(bench=args.bench, model=args.model, mode=args.mode, instances=args.instances, split=args.split,
                      workers=args.workers, run_id=args.run_id or time.strftime("%Y%m%d-%H%M%S"),
                      output_dir=args.output_dir, grade=args.grade, grade_timeout=args.grade_timeout,
                      grading=args.grading, grading_network=args.grading_network, disk_mb=args.disk_mb,
                      retry_errors=args.retry_errors, agent=agent, sandbox=args.sandbox, engine=args.engine,
                      executor=args.executor, ray_address=args.ray_address, image_template=args.image_template,
                      batching=replace(EVAL_BATCHING, max_size=args.batch_size,
                                       max_wait=EVAL_BATCHING.max_wait if args.batch_wait is None else args.batch_wait))


def _print_summary(summary: dict, run_dir: Path) -> None:
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
