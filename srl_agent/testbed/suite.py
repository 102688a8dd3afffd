"""A repository's test suite as SWE-bench runs it: the eval script, a run in a sandbox, and the statuses it reports.

The log is read with swebench's own parsers, plus one correction: pytest >= 9 reports a unittest test whose
`subTest`s fail as PASSED and adds SUBFAILED lines that swebench ignores, so here such a test is FAILED.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

TEST_COMMAND = "python3 -m pytest -rA --tb=short -p no:cacheprovider -o addopts= {test_dir}"
_SUBFAILED = re.compile(r"^SUBFAIL(?:ED)?\S*(?:\s.*?)?\s(\S+::\S+)(?:\s+-\s|\s*$)")
# a result line whose test id holds a space inside its parameters: `PASSED t.py::test[a b]`, `FAILED t.py::t[a c] - E`
_SPACED_ID = re.compile(r"^(?:PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+::\S*?\[[^\]]* [^\]]*\])(?: - .*)?$")
_COLLECTION_ERROR = re.compile(r"^(?:ERROR collecting|ImportError while importing|E\s+(?:ModuleNotFound|Import)Error)",
                               re.MULTILINE)
_HEREDOC = "EOF_114329324912"  # the delimiter SWE-bench's own eval scripts use


def suite_command(test_dir: str) -> str:
    return TEST_COMMAND.format(test_dir=shlex.quote(test_dir))


def sandbox_python_path(python_path: str) -> str:
    """PYTHONPATH inside the sandbox for the layout's `python_path` (`.` or `src`)."""
    return "/testbed" if python_path in (".", "") else f"/testbed/{python_path}"


def eval_script(base_commit: str, test_patch: str, test_files_at_base: list[str], new_test_files: list[str],
                test_command: str) -> str:
    """The swebench-5 `eval_script`: reset the test files, apply the test patch (if any), run the suite, reset."""
    reset = [f"git checkout {base_commit} -- {' '.join(test_files_at_base)}"] if test_files_at_base else []
    remove_new = [f"rm -f {' '.join(new_test_files)}"] if new_test_files else []
    apply = [f"git apply -v - <<'{_HEREDOC}'", test_patch.rstrip("\n"), _HEREDOC] if test_patch.strip() else []
    lines = ["#!/bin/bash", "set -uxo pipefail", "cd /testbed", *reset, *remove_new, *apply,
             ": '>>>>> Start Test Output'", test_command, ": '>>>>> End Test Output'", *reset, *remove_new]
    return "\n".join(lines) + "\n"


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


def unreadable_ids(log: str) -> set[str]:
    """The ids swebench's pytest parser cuts short: it reads an id up to its first space, so `t[a b]` becomes `t[a`,
    and tests that share the cut id overwrite each other's status. Grading reads them the same way, so such a test
    can be neither FAIL_TO_PASS nor PASS_TO_PASS."""
    return {m[1].split(" ", 1)[0] for m in map(_SPACED_ID.match, log.splitlines()) if m}


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
        """The passing tests whose ids the harness reads whole (see `unreadable_ids`)."""
        return {t for t, s in self.statuses.items() if s == "PASSED"} - unreadable_ids(self.log)

    def collection_errors(self) -> list[str]:
        return [m.group(0) for m in _COLLECTION_ERROR.finditer(self.log)]


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
