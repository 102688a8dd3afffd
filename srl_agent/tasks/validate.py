"""Validation as SWE-bench does it: the repository's own tests, in a sandbox, before and after a mutation.

A mutation is kept when at least one test that passed on the clean tree fails with the bug
(FAIL_TO_PASS) and every other passing test still passes (PASS_TO_PASS). It is dropped when the tests
time out, when the package no longer imports (collection errors), when tests disappear, or when more
than `max_fail_fraction` of the passing suite fails (a bug that breaks everything teaches little).

The suite runs and its log is parsed by testbed/suite.py; here are the verdict and the failures' tracebacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..testbed.suite import SuiteRun

_HEADLINE = re.compile(r"^_{3,} (.+?) _{3,}$")
ACCEPTED = "accepted"
UNTRACEABLE = "untraceable"  # accepted by the suite, but the expert could not trace it from what the agent sees


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
class Verdict:
    """What one mutation did to the suite."""

    status: str
    """accepted, no_failing, too_many_failing, import_error, tests_changed, timeout, patch_failed (and, counted by
    the factory, untraceable)."""
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
