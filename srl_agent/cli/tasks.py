"""`srl-agent tasks synthesize|build|split`: the task factory (the work: srl_agent.tasks)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..tasks.mutate import KINDS
from .common import log, out, progress_bar


def add_parser(sub) -> None:
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
    synth.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND",
                       help=f"mutation kinds to make tasks of ({', '.join(KINDS)})")
    synth.add_argument("--traceable-only", action="store_true",
                       help="keep only tasks whose every expert call can be read off what the agent sees")
    synth.add_argument("--writer", metavar="URL", help="an OpenAI-compatible …/v1 that rewrites problem statements")
    synth.add_argument("--writer-model", default="default")
    synth.add_argument("--no-expert", dest="expert", action="store_false",
                       help="write instances only: no images, no expert trajectories")
    synth.set_defaults(handler=cmd_tasks_synthesize)

    build = tasks_sub.add_parser("build", help="a curriculum (configs/curricula/*.yaml): synthesize its training "
                                               "and held-out packages, then split them")
    build.add_argument("curriculum", help="the curriculum file: pinned packages, the held-out ones, the seed")
    build.add_argument("--out", required=True, help="the task folder (tasks/NAME; OUT/split/{train,test}); a rerun "
                                                    "resumes it")
    build.add_argument("--workers", type=int, default=2, help="sandboxes at once")
    build.add_argument("--no-expert", dest="expert", action="store_false",
                       help="write instances only: no images, no expert trajectories")
    build.set_defaults(handler=cmd_tasks_build)

    split = tasks_sub.add_parser("split", help="hold whole repositories out of training")
    split.add_argument("tasks", help="a task folder (instances.jsonl, trajectories.jsonl)")
    split.add_argument("--out", required=True, help="writes OUT/train and OUT/test")
    split.add_argument("--holdout", nargs="+", metavar="REPO", help="repositories for the test side")
    split.add_argument("--fraction", type=float, default=0.25, help="without --holdout: this share of repositories")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(handler=cmd_tasks_split)


def cmd_tasks_synthesize(args: argparse.Namespace) -> int:
    from ..tasks.synthesize import SourceSpec, SynthesizeConfig, synthesize

    if not args.repo and not args.pypi:
        raise UserError("tasks synthesize: pass --repo PATH or --pypi NAME==VERSION")
    cfg = SynthesizeConfig(out=Path(args.out), max_tasks=args.max_tasks, seed=args.seed,
                           attempts_per_task=args.attempts_per_task, workers=args.workers,
                           max_fail_fraction=args.max_fail_fraction, test_timeout=args.test_timeout,
                           writer=args.writer, writer_model=args.writer_model, expert=args.expert,
                           kinds=tuple(args.kinds), traceable_only=args.traceable_only)

    sources = [SourceSpec(p) for p in args.repo] + [SourceSpec(f"pypi:{p}") for p in args.pypi]
    summary = synthesize(sources, cfg, _console_progress())
    _print_repos(summary)
    out.print(f"{summary['instances']} instances in {cfg.out / 'instances.jsonl'}; train with "
              f"`srl-agent train --env swe --trajectories {cfg.out}`", markup=False, highlight=False)
    return 0


def _console_progress():
    from ..tasks.synthesize import Progress

    class ConsoleProgress(Progress):
        def log(self, message: str) -> None:
            log(message)

        def bar(self, description: str, total: int):
            return progress_bar(description, total)

    return ConsoleProgress()


def _print_repos(summary: dict) -> None:
    """One line per repository of a synthesize summary, and the expert's count."""
    for repo in summary["repos"]:
        if repo["skipped"]:
            out.print(f"{repo['repo']}: skipped ({repo['skipped']})", markup=False)
        else:
            out.print(f"{repo['repo']}: {repo['accepted']} tasks from {repo['tried']} mutations in "
                      f"{repo['seconds']:.0f}s; kinds {repo['kinds']}", markup=False, highlight=False)
    if "expert_solved" in summary:
        out.print(f"expert: {summary['expert_solved']} solved, {len(summary['expert_failed'])} failed")


def cmd_tasks_build(args: argparse.Namespace) -> int:
    from ..tasks.curriculum import build, load_curriculum

    curriculum = load_curriculum(args.curriculum)
    summary = build(curriculum, Path(args.out), args.workers, args.expert, _console_progress())
    for side in ("train", "heldout"):
        _print_repos(summary[side])
    _print_split(summary["split"], Path(args.out) / "split")
    return 0


def cmd_tasks_split(args: argparse.Namespace) -> int:
    from ..tasks.split import split_folder

    _print_split(split_folder(Path(args.tasks), Path(args.out), args.holdout, args.fraction, args.seed),
                 Path(args.out))
    return 0


def _print_split(counts: dict[str, dict], folder: Path) -> None:
    for side, info in counts.items():
        out.print(f"{side}: {info['instances']} instances, {info['trajectories']} trajectories from "
                  f"{', '.join(info['repos']) or 'no repositories'} -> {folder / side}", markup=False)
