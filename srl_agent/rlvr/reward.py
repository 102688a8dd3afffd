"""The verifiable reward: the instance's own tests, run in the episode's own sandbox after its edits.

An episode leaves its patch in place in its sandbox (the repository at /testbed). `verify` writes the
instance's swebench-5 `eval_script` there and runs it, exactly as the official harness would after
applying the patch: reset the test files, apply the test patch, run the suite. The log between the
harness's start/end markers is read with the instance's swebench log parser (plus the SUBFAILED
correction of testbed/suite.py) and graded with swebench's own rules (`test_passed`, and `test_maintained` for
PASS_TO_PASS, where a skipped test is no regression). The episode's sandbox is a hardened one (no network, no
capabilities, non-root, limits), the same kind `srl-agent eval` grades in (testbed/grading.py):

    resolved   every FAIL_TO_PASS test passes and no PASS_TO_PASS test broke    -> reward 1, else 0
    partial    (option) fraction of FAIL_TO_PASS passing, 0 if any PASS_TO_PASS broke
    format     (option) minus `format_penalty` per malformed turn (a turn with no parsable tool call)

`score` is the pure part; `verify` is the sandbox part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..testbed.grading import run_eval_script
from ..testbed.suite import parse_statuses
from .config import EpisodeRewardConfig

START_MARKER = ">>>>> Start Test Output"
END_MARKER = ">>>>> End Test Output"

@dataclass
class Reward:
    """One episode's score and what it is made of."""

    reward: float
    resolved: bool
    fail_to_pass_passing: int
    fail_to_pass_total: int
    pass_to_pass_broken: int
    malformed_turns: int
    reason: str = ""
    """Why the tests gave nothing ('eval_timeout', 'no_tests_ran', 'sandbox_error: ...' when the sandbox failed
    while grading; for an episode ended by its sandbox's failure, that failure), '' when they ran."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def marked_test_output(log: str) -> str:
    """The part of an eval_script's log between the harness markers (all of it when a marker is missing)."""
    start, end = log.find(START_MARKER), log.rfind(END_MARKER)
    if start < 0:
        return log
    body_start = log.find("\n", start)
    body_start = len(log) if body_start < 0 else body_start + 1
    if end < body_start:
        return log[body_start:]
    return log[body_start:log.rfind("\n", 0, end) + 1]


def expected_tests(instance: dict) -> tuple[list[str], list[str]]:
    """FAIL_TO_PASS and PASS_TO_PASS of an instance (swebench stores them as JSON strings or lists)."""
    def as_list(value) -> list[str]:
        return json.loads(value) if isinstance(value, str) else list(value)

    return as_list(instance["FAIL_TO_PASS"]), as_list(instance["PASS_TO_PASS"])


def score(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str], malformed_turns: int,
          cfg: EpisodeRewardConfig, reason: str = "") -> Reward:
    """Grade one episode from its test statuses ({test id: PASSED|FAILED|...}), a pure function.

    A test missing from `statuses` counts as not passing, a skipped PASS_TO_PASS test as kept (swebench's rules)."""
    from swebench.harness.grading import test_maintained, test_passed

    f2p_passing = sum(test_passed(t, statuses) for t in fail_to_pass)
    p2p_broken = sum(not test_maintained(t, statuses) for t in pass_to_pass)
    resolved = bool(fail_to_pass) and f2p_passing == len(fail_to_pass) and p2p_broken == 0 and not reason
    if resolved:
        base = 1.0
    elif cfg.partial_credit and fail_to_pass and p2p_broken == 0 and not reason:
        base = f2p_passing / len(fail_to_pass)
    else:
        base = 0.0
    return Reward(base - cfg.format_penalty * malformed_turns, resolved, f2p_passing, len(fail_to_pass), p2p_broken,
                  malformed_turns, reason)


def fault_line(error: BaseException) -> str:
    """One short line naming a sandbox's failure: engines raise errors of many types, some with messages of
    several lines, which would split a log line."""
    message = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def unplayable(instance: dict, cfg: EpisodeRewardConfig, reason: str, malformed_turns: int = 0) -> Reward:
    """The reward of an episode whose tests could not run because its sandbox failed: 0 (less the format penalty),
    with `reason` (a pure function)."""
    return score({}, *expected_tests(instance), malformed_turns, cfg, reason)


def verify(sandbox, instance: dict, cfg: EpisodeRewardConfig, malformed_turns: int = 0) -> tuple[Reward, str]:
    """Run `instance`'s eval_script in `sandbox` (the episode's edits in place) and score it; returns (reward, log).

    A sandbox that dies or errors scores 0 with the reason; the caller's run goes on."""
    fail_to_pass, pass_to_pass = expected_tests(instance)
    try:
        obs = run_eval_script(sandbox, instance["eval_script"], cfg.eval_timeout)
    except Exception as e:  # a dead container raises engine-specific errors; the episode just scores 0
        return unplayable(instance, cfg, f"sandbox_error: {fault_line(e)}", malformed_turns), ""
    if obs.timed_out:
        return score({}, fail_to_pass, pass_to_pass, malformed_turns, cfg, "eval_timeout"), obs.output
    statuses = parse_statuses(marked_test_output(obs.output), instance.get("log_parser") or "parse_log_pytest")
    reason = "" if statuses else "no_tests_ran"
    return score(statuses, fail_to_pass, pass_to_pass, malformed_turns, cfg, reason), obs.output
