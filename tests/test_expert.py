"""The task factory's scripted expert: a debugging procedure whose every call can be read off what the agent sees."""

from __future__ import annotations

import difflib
import json
import re
import shlex

from srl_agent.bench.expert import THOUGHTS, VIEW_LINES, debug_expert_plan, plan_for, traceable

CLEAN = '''\
class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def peek(self, default=None):
        if not self.items:
            return default
        return self.items[-1]
''' + "".join(f"\n\ndef pad{k}(x):\n    return x\n" for k in range(3)) + '''

def window(values, size):
    """Runs of `size` values."""
    out = []
''' + "".join(f"    # step {k}\n" for k in range(40)) + '''\
    for i in range(len(values) - size + 1):
        out.append(values[i:i + size])
    return out
'''


def instance_for(buggy: str, tests: list[str]) -> dict:
    """A factory-style instance whose gold patch turns `buggy` back into CLEAN."""
    patch = "".join(difflib.unified_diff(buggy.splitlines(True), CLEAN.splitlines(True), "a/kit/core.py",
                                         "b/kit/core.py"))
    return {"instance_id": "kit__t-1", "patch": "diff --git a/kit/core.py b/kit/core.py\n" + patch,
            "FAIL_TO_PASS": json.dumps(tests), "problem_statement": "tests fail"}


def sed_lines(command: str, text: str) -> str:
    """What `sed -n 'A,+Np' FILE` prints of `text`."""
    start, more = map(int, re.fullmatch(r"sed -n '(\d+),\+(\d+)p' \S+", command).groups())
    return "".join(text.splitlines(True)[start - 1:start + more])


def play(plan, text: str) -> str:
    """Check each edit's old text is in what the last `sed` printed, apply the edits; the text at the end."""
    printed = ""
    for step in plan:
        command = step.action.arguments.get("command", "")
        if command.startswith("sed "):
            printed = sed_lines(command, text)
        if command == "str_replace":
            old, new = step.action.arguments["old_str"], step.action.arguments["new_str"]
            assert old in printed and text.count(old) == 1
            text = text.replace(old, new, 1)
    return text


def test_runs_the_test_finds_reads_edits_reruns_and_submits_in_fixed_words():
    buggy = CLEAN.replace("if not self.items:", "if self.items:")
    tests = ["tests/test_core.py::test_peek[empty stack]", "tests/test_core.py::test_a"]
    plan = debug_expert_plan(instance_for(buggy, tests), lambda path: buggy)
    calls = [s.action.arguments.get("command", s.action.name) for s in plan]
    run_test = f"cd /testbed && python3 -m pytest {shlex.quote(sorted(tests)[0])} -q -o addopts= --tb=short"
    assert calls[0] == calls[-2] == run_test  # the report's first test, as the report quotes it
    assert calls[1] == "grep -rn --include='*.py' 'def peek(' /testbed"  # the name a traceback ends in
    peek = buggy.splitlines().index("    def peek(self, default=None):") + 1
    assert calls[2] == f"sed -n '{peek},+{VIEW_LINES - 1}p' /testbed/kit/core.py"  # the line grep prints
    assert calls[3:] == ["str_replace", run_test, "submit"]
    edit = plan[3].action.arguments
    assert (edit["old_str"], edit["new_str"]) == ("        if self.items:", "        if not self.items:")  # minimal
    assert [s.thought for s in plan] == [THOUGHTS[k] for k in ("test", "find", "read", "edit", "retest", "submit")]
    assert play(plan, buggy) == CLEAN


def test_a_change_far_below_its_def_is_read_around_the_change_and_two_hunks_in_view_share_one_read():
    buggy = CLEAN.replace("# step 30", "# step 3O").replace("len(values) - size + 1", "len(values) - size")
    plan = debug_expert_plan(instance_for(buggy, ["tests/test_core.py::test_window"]), lambda path: buggy)
    calls = [s.action.arguments.get("command", s.action.name) for s in plan]
    assert [c.split()[0] for c in calls] == ["cd", "grep", "sed", "str_replace", "str_replace", "cd", "submit"]
    assert "'def window('" in calls[1]
    window = buggy.splitlines().index("def window(values, size):") + 1
    assert not calls[2].startswith(f"sed -n '{window},")  # 40 lines of body: the change is out of a read from def
    assert play(plan, buggy) == CLEAN


def test_every_hunk_of_a_multi_place_bug_is_found_and_read_before_its_edit():
    buggy = CLEAN.replace("return default", "return None").replace("    return out", "    return out[1:]")
    plan = debug_expert_plan(instance_for(buggy, ["tests/test_core.py::test_window"]), lambda path: buggy)
    kinds = [s.thought for s in plan]
    assert kinds.count(THOUGHTS["find"]) == kinds.count(THOUGHTS["read"]) == kinds.count(THOUGHTS["edit"]) == 2
    assert play(plan, buggy) == CLEAN


def test_swe_mini_tasks_keep_their_recorded_plan_and_factory_tasks_get_the_debugging_one():
    assert plan_for({"repro": "print(1)"}).__name__ == "expert_plan"
    assert plan_for({"repro": "print(1)"}, short=True).__name__ == "short_expert_plan"
    assert plan_for({}) is debug_expert_plan


def test_a_bug_is_traceable_only_when_the_output_names_its_one_function_and_sed_shows_the_line():
    peek_line = CLEAN.splitlines().index("        return self.items[-1]") + 1
    window_line = CLEAN.splitlines().index("        out.append(values[i:i + size])") + 1
    failure = "tests/test_core.py:12: in test_peek\n    assert s.peek() == 3\nE   assert 2 == 3"
    assert traceable(CLEAN, peek_line, failure, [CLEAN])
    # the output names another function, or the name only as part of a word
    assert not traceable(CLEAN, peek_line, failure.replace("peek", "top"), [CLEAN])
    assert not traceable(CLEAN, peek_line, "in test_peeking\nE   assert 2 == 3", [CLEAN])
    # two `def peek(` in the sources: grep answers two lines
    assert not traceable(CLEAN, peek_line, failure, [CLEAN, "def peek(x):\n    pass\n"])
    # a line more than VIEW_LINES below its def is not among the lines sed prints from the def
    window_def = CLEAN.splitlines().index("def window(values, size):") + 1
    assert window_line - window_def >= VIEW_LINES
    assert not traceable(CLEAN, window_line, "in test_window\n    window([1], 1)", [CLEAN])
    # module level: no function to find
    assert not traceable(CLEAN, 1, "in Stack", [CLEAN])
