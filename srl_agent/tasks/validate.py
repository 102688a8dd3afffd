"""Validation as SWE-bench does it: the repository's own tests, in a sandbox, before and after a mutation.

A mutation is kept when at least one test that passed on the clean tree fails with the bug
(FAIL_TO_PASS) and every other passing test still passes (PASS_TO_PASS). It is dropped when the tests
time out, when the package no longer imports (collection errors), when tests disappear, or when more
than `max_fail_fraction` of the passing suite fails (a bug that breaks everything teaches little).

The log is read with swebench's own pytest parser, plus one correction: pytest >= 9 reports a
unittest test whose `subTest`s fail as PASSED and adds SUBFAILED lines that swebench ignores, so here
such a test is FAILED.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

TEST_COMMAND = "python3 -m pytest -rA --tb=short -p no:cacheprovider -o addopts= {test_dir}"
_SUBFAILED = re.compile(r"^SUBFAIL(?:ED)?\S*(?:\s.*?)?\s(\S+::\S+)(?:\s+-\s|\s*$)")
_HEADLINE = re.compile(r"^_{3,} (.+?) _{3,}$")
_COLLECTION_ERROR = re.compile(r"^(?:ERROR collecting|ImportError while importing|E\s+(?:ModuleNotFound|Import)Error)",
                               re.MULTILINE)

ACCEPTED = "accepted"


def suite_command(test_dir: str) -> str:
    return TEST_COMMAND.format(test_dir=shlex.quote(test_dir))


def sandbox_python_path(python_path: str) -> str:
    """PYTHONPATH inside the sandbox for the layout's `python_path` (`.` or `src`)."""
    return "/testbed" if python_path in (".", "") else f"/testbed/{python_path}"


def parse_statuses(log: str, parser: str = "parse_log_pytest") -> dict[str, str]:
    """{test id: PASSED | FAILED | ERROR | SKIPPED | XFAIL}: swebench's `parser` (a PARSER_REGISTRY name), subtests
    failing."""
    from swebench.harness.log_parsers import PARSER_REGISTRY

    statuses = PARSER_REGISTRY[parser](log, None)
    for line in log.splitlines():
        match = _SUBFAILED.match(line)
        if match:
            statuses[match[1]] = "FAILED"
    return statuses


def failure_sections(log: str) -> dict[str, str]:
    """The `--tb=short` block of each failure, keyed by pytest's headline (`Class.test_name`, no subtest suffix)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_failures = False
    for line in log.splitlines():
        if re.match(r"^=+ (FAILURES|ERRORS) =+$", line):
            in_failures = True
            continue
        if re.match(r"^=+ .* =+$", line):
            in_failures, current = False, None
            continue
        headline = _HEADLINE.match(line) if in_failures else None
        if headline:
            name = re.sub(r"(\s*\[[^\]]*\])?(\s*\([^)]*\))?$", "", headline[1])  # `T.test_a [msg] (i=2)`
            current = sections.setdefault(name, [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def section_for(test_id: str, sections: dict[str, str]) -> str:
    """The failure block of `tests/x.py::TestA::test_b[1]` (headline `TestA.test_b[1]`), or ''."""
    name = test_id.split("::", 1)[-1].replace("::", ".")
    return sections.get(name) or sections.get(re.sub(r"\[.*\]$", "", name), "")


@dataclass
class SuiteRun:
    """One run of the suite in a sandbox."""

    statuses: dict[str, str]
    log: str
    timed_out: bool = False
    patch_failed: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> set[str]:
        return {t for t, s in self.statuses.items() if s == "PASSED"}

    def collection_errors(self) -> list[str]:
        return [m.group(0) for m in _COLLECTION_ERROR.finditer(self.log)]


@dataclass
class Verdict:
    """What one mutation did to the suite."""

    status: str
    """accepted, no_failing, too_many_failing, import_error, tests_changed, timeout, patch_failed."""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    detail: str = ""


def judge(baseline: set[str], run: SuiteRun, max_fail_fraction: float) -> Verdict:
    """Keep or drop a mutation from the clean run's passing tests and the mutated run (a pure function)."""
    if run.patch_failed:
        return Verdict("patch_failed", detail=run.log[-300:])
    if run.timed_out:
        return Verdict("timeout")
    errors = run.collection_errors()
    if errors or not run.statuses:
        return Verdict("import_error", detail=(errors or ["no test ran"])[0][:300])
    missing = sorted(baseline - set(run.statuses))
    if missing:
        return Verdict("tests_changed", detail=f"{len(missing)} tests no longer collected, e.g. {missing[0]}")
    failing = sorted(t for t in baseline if run.statuses[t] in ("FAILED", "ERROR"))
    still = sorted(t for t in baseline if run.statuses[t] == "PASSED")
    if not failing:
        return Verdict("no_failing")
    if len(failing) > max_fail_fraction * len(baseline):
        return Verdict("too_many_failing", failing, still, f"{len(failing)} of {len(baseline)} tests fail")
    if len(failing) + len(still) != len(baseline):  # skipped/xfailed now: not a clean signal
        return Verdict("tests_changed", detail="tests that passed are now skipped")
    return Verdict(ACCEPTED, failing, still)


def run_suite(image: str, repo: Path, test_dir: str, python_path: str, patches: tuple[str, ...] = (),
              timeout: float = 300.0, command: str | None = None) -> SuiteRun:
    """Copy `repo` into a fresh sandbox from `image`, apply `patches` in order, run the tests there, parse the log."""
    from ..sandbox import SandboxConfig, open_sandbox

    env = {"PYTHONPATH": sandbox_python_path(python_path), "PYTHONDONTWRITEBYTECODE": "1"}
    config = SandboxConfig(image=image, default_timeout=timeout, env=env, output_limit=2_000_000)
    start = time.monotonic()
    with open_sandbox(config, kind="docker", repo=str(repo)) as sandbox:
        for i, patch in enumerate(patches):
            sandbox.write_file(f"/tmp/patch-{i}.diff", patch)
            applied = sandbox.run(f"git apply /tmp/patch-{i}.diff", timeout=60)
            if applied.exit_code != 0:
                return SuiteRun({}, applied.output, patch_failed=True)
        obs = sandbox.run(command or suite_command(test_dir), timeout=timeout)
    return SuiteRun(parse_statuses(obs.output), obs.output, obs.timed_out, seconds=round(time.monotonic() - start, 2))
