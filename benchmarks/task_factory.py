"""The task factory at scale: tasks per repository, acceptance rate, time per accepted task, mutation kinds.

Runs `srl-agent tasks synthesize` (timed, images and expert included) on each source, then prints the
README's table from the task folders' validation.jsonl and report.json:

    python benchmarks/task_factory.py --out /tmp/factory --repo envs/swe-mini/repos/* \
        --pypi cachetools==5.5.0 more-itertools==10.5.0 sortedcontainers==2.4.0 [--max-tasks 5] [--report-only]
    python benchmarks/task_factory.py --smoke   # one task from one swe-mini project, into a temp dir
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _common import arg_parser, output_dir

from srl_agent.jsonio import atomic_writer

SMOKE_REPO = Path(__file__).resolve().parents[1] / "envs" / "swe-mini" / "repos" / "pocketlib"


def run(out: Path, sources: list[str], pypi: bool, max_tasks: int) -> float:
    flag = "--pypi" if pypi else "--repo"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "srl_agent.cli", "tasks", "synthesize", flag, *sources, "--out", str(out),
                    "--max-tasks", str(max_tasks), "--seed", "0", "--workers", "2"], check=True)
    return time.monotonic() - start


def table(folders: dict[Path, float]) -> str:
    lines = ["| repository | tests | tasks | mutations validated | accepted | s per task (validation) | "
             "kinds of the tasks |",
             "|---|---:|---:|---:|---:|---:|---|"]
    all_kinds: Counter = Counter()
    totals = Counter()
    for folder, seconds in folders.items():
        report = json.loads((folder / "report.json").read_text())
        validated = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines()]
        for repo in report["repos"]:
            if repo["skipped"]:
                lines.append(f"| {repo['repo']} | | skipped: {repo['skipped'][:80]} | | | | |")
                continue
            rows = [r for r in validated if r["repo"] == repo["repo"]]
            accepted = sum(r["status"] == "accepted" for r in rows)
            lines.append(f"| {repo['repo']} | {repo['tests']} | {repo['accepted']} | {len(rows)} | "
                         f"{100 * accepted / max(1, len(rows)):.0f}% | "
                         f"{repo['seconds'] / max(1, repo['accepted']):.1f} | "
                         + ", ".join(f"{k} {v}" for k, v in sorted(repo["kinds"].items())) + " |")
            all_kinds.update(repo["kinds"])
            totals.update(tasks=repo["accepted"], validated=len(rows), accepted=accepted)
        totals.update(seconds=seconds)
    # the whole runs' wall time: downloads, validation, images and the expert's runs
    lines.append(f"| **all** (s per task: everything) | | **{totals['tasks']}** | {totals['validated']} | "
                 f"{100 * totals['accepted'] / max(1, totals['validated']):.0f}% | "
                 f"{totals['seconds'] / max(1, totals['tasks']):.1f} | "
                 + ", ".join(f"{k} {v}" for k, v in all_kinds.most_common()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", help="a folder; OUT/repos and OUT/pypi become task folders (required but with "
                                      "--smoke)")
    parser.add_argument("--repo", nargs="*", default=[])
    parser.add_argument("--pypi", nargs="*", default=[])
    parser.add_argument("--max-tasks", type=int, default=5)
    parser.add_argument("--report-only", action="store_true", help="print the table of earlier runs")
    args = parser.parse_args()
    if args.smoke:  # no downloads: CI reaches no registry
        args.repo, args.pypi, args.max_tasks = [str(SMOKE_REPO)], [], 1
    elif not args.out:
        parser.error("--out is required")
    with output_dir(args.out, args.smoke) as folder:
        out = Path(folder)
        timing = out / "seconds.json"
        seconds = json.loads(timing.read_text()) if timing.exists() else {}
        for name, sources, pypi in (("repos", args.repo, False), ("pypi", args.pypi, True)):
            if sources and not args.report_only:
                seconds[name] = run(out / name, sources, pypi, args.max_tasks)
                with atomic_writer(timing) as f:
                    json.dump(seconds, f)
        print(table({out / name: s for name, s in seconds.items()}))


if __name__ == "__main__":
    main()
