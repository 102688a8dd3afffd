"""`srl-agent tasks synthesize`: a repository in, validated bug-fix tasks and expert trajectories out.

    source (git repo | folder | sdist | pypi NAME==VERSION)
      -> clean snapshot, kept as OUT/sources/<name>.tar.gz, committed with a fixed identity
      -> the suite on the clean tree, in a sandbox (must be green: no tests, a failing suite or a package
         that does not import stop here)
      -> seeded mutations (mutate.select), each validated in its own sandbox, `workers` at a time;
         every verdict is appended to OUT/validation.jsonl at once (a rerun skips what is there)
      -> the first `max_tasks` accepted ones (in the seeded order) become swebench-5 instances with a
         problem statement from their failing tests -> OUT/instances.jsonl
      -> one image per instance; the scripted expert solves each through the agent loop
         -> OUT/trajectories.jsonl (what `srl-agent train --trajectories OUT` reads)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..jsonio import atomic_writer, read_jsonl, write_jsonl
from ..testbed.suite import SuiteRun, run_suite
from . import instances as task_instances
from .mutate import KINDS, Mutation, select
from .source import Layout, detect_layout, download_sdist, git, snapshot, source_name
from .statements import problem_statement, rewrite
from .validate import ACCEPTED, UNTRACEABLE, Verdict, failure_sections, judge, section_for


@dataclass
class SynthesizeConfig:
    """One factory run."""

    out: Path
    """The task folder: instances.jsonl, trajectories.jsonl, validation.jsonl, sources/, sdists/ (--pypi's
    downloads), report.json."""
    max_tasks: int = 5
    """Accepted tasks wanted per repository."""
    seed: int = 0
    """Picks and orders the mutations; the same seed gives the same tasks."""
    attempts_per_task: int = 4
    """Mutations tried per task wanted (most mutations break no test, or too many)."""
    workers: int = 2
    """Sandboxes at once."""
    max_fail_fraction: float = 0.5
    """Drop a mutation that fails more than this fraction of the passing suite."""
    test_timeout: float = 120.0
    """Seconds one run of the suite may take; a mutation that hangs it is dropped."""
    writer: str | None = None
    """An OpenAI-compatible URL (…/v1) that rewrites the problem statements; none: the template's text."""
    writer_model: str = "default"
    """The `model` the writer's requests name (a server with one model may ignore it)."""
    expert: bool = True
    """Build the images and have the scripted expert solve every task (its trajectories)."""
    image: str = "srl-agent/swe:latest"
    """The sandbox image the suites run in (and the task images build on)."""
    kinds: tuple[str, ...] = KINDS
    """The mutation kinds to make tasks of (mutate.KINDS)."""
    traceable_only: bool = False
    """Keep only tasks the debugging expert can trace from what the agent sees (`bench.expert.traceable`): an
    accepted mutation that is not is counted as `untraceable`."""


@dataclass
class SourceReport:
    """What the factory did with one repository (README numbers come from these)."""

    repo: str
    tried: int = 0
    accepted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    tests: int = 0
    suite_seconds: float = 0.0
    """One run of the clean suite in its sandbox (sandbox start included)."""
    skipped: str | None = None


class Progress:
    """How the factory reports: log lines, and bars that advance (the CLI draws them with rich)."""

    def log(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[[str], None]]:
        yield lambda info="": None


def _bug_patch(repo: Path, mutation: Mutation) -> str:
    """The mutation as a git patch against `repo` (a scratch copy of the clean tree, left clean).

    Not the clean tree itself: validation threads copy that one into their sandboxes meanwhile.
    """
    target = repo / mutation.path
    original = target.read_text()
    try:
        target.write_text(mutation.apply(original))
        return git(repo, "diff", "--", mutation.path)
    finally:
        target.write_text(original)


def _archive(folder: Path, dest: Path, name: str) -> None:
    """The clean source as an sdist-like tarball (NAME/...), written atomically."""
    with atomic_writer(dest, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
        tar.add(folder, arcname=name, filter=lambda info: None if info.name.endswith("/.git") else info)


def _run_suite(cfg: SynthesizeConfig, repo: Path, layout: Layout, *patches: str) -> SuiteRun:
    return run_suite(cfg.image, repo, " ".join(layout.test_paths), layout.python_path, patches, cfg.test_timeout,
                     command=layout.test_command())


def _check_baseline(repo: str, run: SuiteRun) -> set[str]:
    """The clean suite's passing tests; a suite that cannot run, or fails, is the user's to fix first."""
    if run.timed_out:
        raise UserError(f"{repo}: the test suite did not finish in time on the clean tree (--test-timeout)")
    errors = run.collection_errors()
    if errors:
        raise UserError(f"{repo}: the package or its tests cannot be imported on the clean tree: {errors[0][:200]}")
    if not run.statuses:
        tail = " ".join(run.log.strip().splitlines()[-1:])[:200]
        raise UserError(f"{repo}: pytest ran no tests on the clean tree ({tail})")
    failing = sorted(t for t, s in run.statuses.items() if s in ("FAILED", "ERROR"))
    if failing:
        raise UserError(f"{repo}: {len(failing)} of {len(run.statuses)} tests fail before any mutation "
                        f"(e.g. {failing[0]}); the factory needs a green suite")
    return run.passed


def synthesize_source(path: Path, repo: str, cfg: SynthesizeConfig, results, progress: Progress,
                      tmp: Path, written: dict[str, dict]) -> tuple[SourceReport, list[dict]]:
    """Validate mutations of one repository; returns its report and its accepted instances.

    `results` is the run's validation log (`bench.eval.InstanceLog` of validation.jsonl): verdicts in it are
    not validated again. `written` holds the instances already in instances.jsonl: they are kept as they are
    (a rewritten statement stays the one the expert's trajectory was made with).
    """
    start = time.monotonic()
    slug = repo.replace("/", "-")
    snap = tmp / slug
    snapshot(path, snap)
    layout: Layout = detect_layout(snap)
    relative_source = f"sources/{slug}.tar.gz"
    _archive(snap, cfg.out / relative_source, slug)
    materialize = task_instances.Materializer(cfg.out, tmp / "repos")
    clean = materialize.clean_repo(relative_source)
    progress.log(f"{repo}: {len(layout.source_files)} source files, tests: {' '.join(layout.test_paths)}; "
                 "running the suite")
    clean_run = _run_suite(cfg, clean, layout)
    baseline = _check_baseline(repo, clean_run)
    scratch = tmp / "scratch"
    shutil.copytree(clean, scratch, symlinks=True)
    files = {p: (clean / p).read_text(errors="replace") for p in layout.source_files}
    mutations = select(files, cfg.seed, cfg.max_tasks * cfg.attempts_per_task, kinds=cfg.kinds)

    def validate(mutation: Mutation, patch: str) -> dict:
        run = _run_suite(cfg, clean, layout, patch)
        verdict = judge(baseline, run, cfg.max_fail_fraction)
        row = {"instance_id": task_instances.instance_id(slug, mutation), "repo": repo,
               "mutation": mutation.to_dict(), "status": verdict.status, "detail": verdict.detail,
               "seconds": run.seconds, "bug_patch": patch}
        if verdict.status == ACCEPTED:
            sections = failure_sections(run.log)
            row.update(fail_to_pass=verdict.fail_to_pass, pass_to_pass=verdict.pass_to_pass,
                       failures={t: section_for(t, sections) for t in verdict.fail_to_pass[:10]})
        results.append(row)
        return row

    # what the expert's grep over /testbed reads: every Python file, the tests' included
    python_texts = [p.read_text(errors="replace") for p in sorted(clean.rglob("*.py"))
                    if ".git" not in p.parts] if cfg.traceable_only else []

    def status(mutation: Mutation, row: dict) -> str:
        """The verdict, with an accepted but untraceable task counted as such when only traceable ones are kept
        (the row in validation.jsonl keeps the suite's verdict, so a rerun with other options reuses it)."""
        if row["status"] != ACCEPTED or not cfg.traceable_only:
            return row["status"]
        return ACCEPTED if _traceable(mutation, row, files, python_texts) else UNTRACEABLE

    pool = ThreadPoolExecutor(max(1, cfg.workers), thread_name_prefix="validate")
    try:
        with progress.bar(f"validate {repo}", len(mutations)) as tick:
            validated = _validate_in_order(
                mutations, lambda m: results.rows.get(task_instances.instance_id(slug, m))
                or pool.submit(validate, m, _bug_patch(scratch, m)),
                cfg.workers, cfg.max_tasks, tick, status)
    except BaseException:  # Ctrl-C: stop the sandboxes now; validation.jsonl keeps what finished
        pool.shutdown(wait=False, cancel_futures=True)
        from ..sandbox.docker import close_all

        close_all()
        raise
    pool.shutdown()
    accepted = [(m, row) for m, row, verdict in validated if verdict == ACCEPTED]
    rows = [written.get(row["instance_id"]) or _instance(repo, relative_source, layout, mutation, row, materialize,
                                                         tmp, cfg)
            for mutation, row in accepted]
    report = SourceReport(repo, tried=len(validated), accepted=len(rows), tests=len(baseline),
                          suite_seconds=clean_run.seconds,
                          statuses=dict(Counter(verdict for _, _, verdict in validated)),
                          kinds=dict(Counter(m.kind for m, _ in accepted)),
                          seconds=round(time.monotonic() - start, 1))
    return report, rows


def _validate_in_order(mutations: list[Mutation], start: Callable[[Mutation], dict | Future], workers: int,
                       wanted: int, tick: Callable[[str], None],
                       status: Callable[[Mutation, dict], str]) -> list[tuple[Mutation, dict, str]]:
    """Validate `workers` mutations at a time, read back in the seeded order, until `wanted` are accepted:
    (mutation, row, verdict) each.

    `start(mutation)` is the recorded verdict (a resumed run) or a future of one; `status(mutation, row)` the
    verdict that counts. The list ends at the `wanted`-th accepted mutation: the rest of its batch still runs
    (its verdicts are recorded for a rerun) but is not counted in the report.
    """
    validated: list[tuple[Mutation, dict, str]] = []
    accepted = 0
    for batch_start in range(0, len(mutations), max(1, workers)):
        batch = [(m, start(m)) for m in mutations[batch_start:batch_start + max(1, workers)]]
        for mutation, item in batch:
            row = item if isinstance(item, dict) else item.result()
            verdict = status(mutation, row)
            validated.append((mutation, row, verdict))
            accepted += verdict == ACCEPTED
            tick(f"{accepted} accepted")
            if accepted >= wanted:
                return validated
    return validated


def _traceable(mutation: Mutation, row: dict, files: dict[str, str], python_texts: list[str]) -> bool:
    """`bench.expert.traceable` for an accepted mutation of the clean sources `files` (`python_texts`: every Python
    file of the clean tree)."""
    from ..bench.expert import traceable

    first_failing = sorted(row["fail_to_pass"])[0]  # the test the expert runs first
    changed_line = files[mutation.path][:min(e.start for e in mutation.edits)].count("\n") + 1
    return traceable(mutation.apply(files[mutation.path]), changed_line, row["failures"].get(first_failing, ""),
                     python_texts)


def _instance(repo: str, source: str, layout: Layout, mutation: Mutation, row: dict,
              materialize: task_instances.Materializer, tmp: Path, cfg: SynthesizeConfig) -> dict:
    task_dir = tmp / "tasks" / mutation.id
    base = materialize({"source": source, "bug_patch": row["bug_patch"]}, task_dir)
    gold = git(task_dir, "diff", "HEAD", "HEAD~1")
    shutil.rmtree(task_dir)
    task_id = task_instances.instance_id(repo.replace("/", "-"), mutation)
    # every failing test is named; the blocks were kept for the first ten (the statement shows three)
    failures = {test: row["failures"].get(test, "") for test in row["fail_to_pass"]}
    statement = problem_statement(task_id, failures, layout.source_files)
    if cfg.writer:
        statement = rewrite(statement, cfg.writer, layout.source_files, cfg.writer_model)
    verdict = Verdict(row["status"], row["fail_to_pass"], row["pass_to_pass"])
    return task_instances.make_instance(repo=repo, source=source, layout=layout, mutation=mutation,
                                        bug_patch=row["bug_patch"], gold_patch=gold, base_commit=base,
                                        verdict=verdict, statement=statement)


def _merge(path: Path, rows: list[dict], key: str) -> list[dict]:
    """The rows of `path` with `rows` added or replaced by `key`, written atomically."""
    merged = {r[key]: r for _, r in read_jsonl(path)} if path.exists() else {}
    merged.update({r[key]: r for r in rows})
    write_jsonl(path, list(merged.values()))
    return list(merged.values())


def solve_with_expert(instances: list[dict], workers: int, progress: Progress) -> tuple[list[dict], list[str]]:
    """The scripted expert on every instance (its own image); returns trajectories and the failures."""
    from ..bench.expert import run_expert
    from ..testbed.instance import instance_sandbox

    def solve(instance: dict):
        try:
            with instance_sandbox(instance) as sandbox:
                return run_expert(instance, sandbox).trajectory.to_dict()
        except Exception as e:  # one task the expert cannot do is reported, the others go on
            return f"{instance['instance_id']}: {type(e).__name__}: {str(e)[:200]}"

    trajectories, failures = [], []
    with progress.bar("expert", len(instances)) as tick, ThreadPoolExecutor(max(1, workers)) as pool:
        for result in pool.map(solve, instances):
            (trajectories if isinstance(result, dict) else failures).append(result)
            tick(f"{len(failures)} failed" if failures else "")
    return trajectories, failures


@dataclass
class SourceSpec:
    """One repository to mutate: a path (git repo, folder, sdist) or `pypi:NAME==VERSION`."""

    spec: str

    def resolve(self, downloads: Path) -> tuple[Path, str]:
        """(local path, repository name)."""
        if self.spec.startswith("pypi:"):
            path = download_sdist(self.spec[5:], downloads)
            return path, f"pypi/{source_name(path)}"
        return Path(self.spec), source_name(self.spec)


def synthesize(sources: list[SourceSpec], cfg: SynthesizeConfig, progress: Progress | None = None) -> dict:
    """Run the factory on every source; returns the report (also OUT/report.json).

    With one source, a source the factory cannot use is an error; with several, it is skipped and the
    report says why.
    """
    progress = progress or Progress()
    cfg.out.mkdir(parents=True, exist_ok=True)
    from ..bench.eval import InstanceLog

    # one verdict per mutation, keyed by the task id it would get, appended with one write and fsync
    results = InstanceLog(cfg.out / "validation.jsonl")
    instances_path = cfg.out / "instances.jsonl"
    written = {row["instance_id"]: row for _, row in read_jsonl(instances_path)} if instances_path.exists() else {}
    reports: list[SourceReport] = []
    new_instances: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="srl-tasks-") as tmp_dir:
        tmp = Path(tmp_dir)
        for i, source in enumerate(sources):
            try:
                path, repo = source.resolve(cfg.out / "sdists")  # kept: a rerun needs no network
                report, rows = synthesize_source(path, repo, cfg, results, progress, tmp / f"work-{i}", written)
            except UserError as e:
                if len(sources) == 1:
                    raise
                progress.log(f"skipped {source.spec}: {e}")
                reports.append(SourceReport(source.spec, skipped=str(e)))
                continue
            progress.log(f"{repo}: {report.accepted} tasks from {report.tried} mutations in {report.seconds:.0f}s "
                         f"({', '.join(f'{k} {v}' for k, v in sorted(report.statuses.items()))})")
            reports.append(report)
            new_instances += rows
    instances = _merge(instances_path, new_instances, "instance_id")
    summary = {"repos": [vars(r) for r in reports], "instances": len(instances)}
    if cfg.expert and new_instances:
        summary.update(_images_and_trajectories(cfg, new_instances, progress))
    with atomic_writer(cfg.out / "report.json") as f:
        json.dump(summary, f, indent=2)
    return summary


def _images_and_trajectories(cfg: SynthesizeConfig, instances: list[dict], progress: Progress) -> dict:
    from ..sandbox.docker import docker_client

    client = docker_client(timeout=600)
    start = time.monotonic()
    with progress.bar("images", len(instances)) as tick:
        task_instances.build_images(client, cfg.out / "instances.jsonl", instances, cfg.image,
                                    progress=lambda m: tick(m.split(":")[-1]))
    path = cfg.out / "trajectories.jsonl"
    have = {row["id"] for _, row in read_jsonl(path)} if path.exists() else set()
    todo = [i for i in instances if i["instance_id"] not in have]
    trajectories, failures = solve_with_expert(todo, cfg.workers, progress)
    for failure in failures:
        progress.log(f"expert failed: {failure}")
    total = _merge(path, trajectories, "id")
    solved_before = len(instances) - len(todo)  # solved by an earlier run of the same command
    return {"expert_solved": solved_before + len(trajectories), "expert_failed": failures,
            "trajectories": len(total), "images_and_expert_seconds": round(time.monotonic() - start, 1)}
