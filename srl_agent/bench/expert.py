"""Scripted experts: they solve a task from its gold patch with the steps a SWE agent takes.

swe-mini's tasks (each has a `repro` script) get the full plan, `expert_plan`:

    1. look at the repository layout            str_replace_editor view /testbed
    2. find the code the gold patch changes     grep for its function
    3. read it                                  str_replace_editor view, around the hunk
    4. reproduce the issue                      create reproduce_issue.py (the task's repro), run it
    5. fix it                                   str_replace_editor str_replace, one call per hunk
    6. check                                    rerun the reproduction and the module's tests
    7. clean up and submit                      rm reproduce_issue.py, submit

The task factory's tasks (no `repro`; the report names the failing tests) get `debug_expert_plan`, a procedure
whose every call can be read off what the agent sees (the report, or the last two observations), in the same
words for every task:

    1. run the report's first failing test      pytest TEST --tb=short        (the id from the report)
    2. find the function                        grep -rn 'def NAME(' /testbed (the name the traceback ends in)
    3. read it                                  sed -n 'LINE,+29p' FILE      (file and line from grep's answer)
    4. make the minimal edit                    str_replace (the text as sed printed it)
    5. run the test again, submit

The plan is fixed before the run (it needs only the gold patch and the files), and the run goes
through the ordinary agent loop in a real sandbox, so every observation is real. A run counts only
if the submitted patch is the gold patch.
"""

from __future__ import annotations

import ast
import json
import random
import re
import shlex
import threading
from collections.abc import Callable

from ..agent import AgentConfig, AgentRun, run_agent
from ..policy.replay import ReplayPolicy
from ..replay import patches_match
from ..sandbox import Sandbox
from ..types import Step, ToolCall, Trajectory

REPRO = "reproduce_issue.py"
ROOT = "/testbed"
_SYMBOL = re.compile(r"(?:def|class)\s+(\w+)")
_ASSIGNMENT = re.compile(r"^(\w+)\s*(?::[^=]*)?=")
VIEW_LINES = 30
"""Lines the debugging expert prints from a definition's first line: the changed line of most mutated functions
lies within them, and 30 lines of code (about 1,200 characters) fit a prompt's observation whole."""
_AST_LOCK = threading.Lock()  # CPython 3.11's ast.parse is not thread-safe ("recursion depth mismatch", gh-106905)
THOUGHTS = {"test": "Let me run the failing test.", "find": "Let me find the function.", "read": "Let me read it.",
            "edit": "I'll fix the bug.", "retest": "Let me run the test again.", "submit": "Submitting."}
"""The debugging expert's monologue per kind of step: one fixed sentence each (varied wording garbles a tiny
model's calls)."""


def _pick(rng: random.Random, *options: str) -> str:
    """Phrasing varies between tasks (seeded by the task), so the monologues are not one template."""
    return rng.choice(options)


def hunk_edits(text: str, hunks, min_context: int = 1) -> list[tuple[str, str]]:
    """(old_str, new_str) per hunk: the changed lines with just enough context (at least `min_context` lines each
    side) to occur once in the file."""
    edits = []
    for hunk in hunks:
        lines = [line for line in hunk if line.line_type in " -+"]
        changed = [i for i, line in enumerate(lines) if line.line_type != " "]
        first, last = changed[0], changed[-1]
        for context in range(min_context, len(lines) + 1):
            window = lines[max(0, first - context): last + 1 + context]
            old = "".join(line.value for line in window if line.line_type in " -")
            new = "".join(line.value for line in window if line.line_type in " +")
            if text.count(old) == 1:
                break
        else:
            raise ValueError(f"hunk at line {hunk.source_start} does not occur exactly once in the file")
        before, text = text, text.replace(old, new, 1)
        # editors' calls rarely end in a newline; drop it where the edit stays unambiguous
        if old.endswith("\n") and new.endswith("\n") and before.count(old[:-1]) == 1:
            old, new = old[:-1], new[:-1]
        edits.append((old, new))
    return edits


def _symbol(text: str, hunk) -> tuple[str, str]:
    """(qualified name, name to grep for) of the function or class around a hunk's first change.

    Read from the file itself (git's hunk headers guess wrong for Python): the nearest `def`/`class`
    above the change that encloses it, qualified by its class for a method.
    """
    changed = next(i for i, line in enumerate(hunk) if line.line_type != " ")
    before = [line.source_line_no for line in list(hunk)[:changed + 1] if line.source_line_no]
    lines = text.splitlines()
    above = lines[: (before[-1] if before else hunk.source_start)]
    while above and not above[-1].strip():  # a blank line says nothing about where it is
        above.pop()
    found: list[tuple[str, str, int]] = []
    indent = None
    for line in reversed(above):
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:  # the changed line itself: it may be the `def` line
            indent = depth + 1
        if depth < indent:
            match = _SYMBOL.match(line.lstrip())
            if match:
                found.append((line.lstrip().split()[0], match[1], depth))
            indent = depth
        if indent == 0 and found:
            break
    if not found:  # a module-level change: name the assignment it is in
        for line in reversed(above):
            match = _ASSIGNMENT.match(line)
            if match:
                return match[1], f"{match[1]} ="
        return "the module", ""
    outer_kind, outer_name, _ = found[-1]
    return ".".join(name for _, name, _ in reversed(found)), f"{outer_kind} {outer_name}"


def _test_target(instance: dict) -> str:
    """The test files the task's test patch touches that exist before it, else those of its failing tests."""
    from unidiff import PatchSet

    existing = [f.path for f in PatchSet(instance["test_patch"]) if not f.is_added_file]
    failing_files = sorted({test.split("::")[0] for test in json.loads(instance["FAIL_TO_PASS"])})
    return " ".join(existing or failing_files) or "tests"


def expert_plan(instance: dict, read_file: Callable[[str], str]) -> list[Step]:
    """The expert's steps (monologue + call, no observations yet) for one instance."""
    from unidiff import PatchSet

    rng = random.Random(instance["instance_id"])
    steps: list[Step] = []

    def step(thought: str, name: str, **arguments) -> None:
        steps.append(Step(thought, ToolCall(name, arguments)))

    def bash(thought: str, command: str) -> None:
        step(thought, "bash", command=command)

    patch = PatchSet(instance["patch"])
    texts = {patched.path: read_file(patched.path) for patched in patch}
    package = patch[0].path.split("/")[0]
    symbol, definition = _symbol(texts[patch[0].path], patch[0][0])
    step(_pick(rng, "Let me start by looking at how the repository is organised.",
               "First I want an overview of the repository layout.",
               "I'll begin by exploring the repository structure to see where things live."),
         "str_replace_editor", command="view", path=ROOT)
    if definition:  # nothing to search for when the change is not inside a named definition
        bash(_pick(rng, f"The behaviour in the issue should come from `{symbol}`. Let me find where it is defined.",
                   f"Let me locate `{symbol}` in the package, since that is where the issue seems to originate.",
                   f"I'll search for `{symbol}`; the issue's symptoms point there."),
             f"grep -rn '{definition}' {ROOT}/{package}")
    reproduce = f"cd {ROOT} && python3 {REPRO}"
    first_view = first_edit = True
    for patched in patch:
        path = f"{ROOT}/{patched.path}"
        text = texts[patched.path]
        n_lines = text.count("\n") + 1
        start = max(1, patched[0].source_start - 8)
        end = min(n_lines, patched[-1].source_start + patched[-1].source_length + 8)
        where = _symbol(text, patched[0])[0]
        step(_pick(rng, f"Let me read `{where}` in {patched.path}.",
                   f"Now I'll open {patched.path} around `{where}` to see the implementation.",
                   f"Let me look at the code of `{where}` in {patched.path}.") if first_view else
             f"The fix also needs a change in {patched.path}. Let me look at `{where}` there.",
             "str_replace_editor", command="view", path=path, view_range=[start, end])
        if first_view:
            step(_pick(rng, "Before changing anything I'll reproduce the problem with the example from the issue.",
                       "Let me write a small script that reproduces the issue first.",
                       "I want to see the failure myself, so I'll turn the issue's example into a script."),
                 "str_replace_editor", command="create", path=f"{ROOT}/{REPRO}", file_text=instance["repro"])
            bash(_pick(rng, "Let me run it.", "Running the reproduction script:", "Let me execute the script."),
                 reproduce)
            first_view = False
        for i, (old, new) in enumerate(hunk_edits(text, patched)):
            hunk_symbol = _symbol(text, patched[i])[0]
            thought = (_pick(rng, f"That confirms the issue. The problem is in `{hunk_symbol}`: this code does not "
                                  "handle the case from the issue. I'll change it so it gives the expected result.",
                             f"The script shows the wrong behaviour, and reading `{hunk_symbol}` explains why. "
                             "Let me fix the logic there.",
                             f"I see the cause now: `{hunk_symbol}` gets this case wrong. Let me edit it.")
                       if first_edit else f"`{hunk_symbol}` needs a matching change as well.")
            first_edit = False
            step(thought, "str_replace_editor", command="str_replace", path=path, old_str=old, new_str=new)
    bash(_pick(rng, "Now let me rerun the reproduction script to check the fix.",
               "Let me run the reproduction again with the fix in place.",
               "Let me verify the fix with the reproduction script."), reproduce)
    bash(_pick(rng, "The output is correct now. Let me run the existing tests to make sure nothing else broke.",
               "That works. I'll run the related tests to check for regressions.",
               "Good. Now the test suite for this part of the code, to be sure nothing regressed."),
         f"cd {ROOT} && python3 -m pytest -q {_test_target(instance)}")
    bash("The tests pass. I'll remove the reproduction script so it does not end up in the patch.",
         f"rm {ROOT}/{REPRO}")
    step(_pick(rng, "The fix is in place and verified. Submitting.", "Everything checks out; let me submit.",
               "The issue is resolved and the tests pass, so I'll submit the change."), "submit")
    return steps


def short_expert_plan(instance: dict, read_file: Callable[[str], str]) -> list[Step]:
    """Read the code around each hunk, edit it, submit: the fewest steps, in the same words for every task.

    For tasks a tiny model should reach by imitation (RLVR needs episodes that sometimes resolve): the full
    plan's varied phrasings and its 10 turns are more than a 361k-parameter model reproduces intact.
    """
    from unidiff import PatchSet

    steps = []
    for patched in PatchSet(instance["patch"]):
        path, text = f"{ROOT}/{patched.path}", read_file(patched.path)
        start = max(1, patched[0].source_start - 2)
        end = min(text.count("\n") + 1, patched[-1].source_start + patched[-1].source_length + 2)
        view = {"command": "view", "path": path, "view_range": [start, end]}
        steps.append(Step("Let me read the code.", ToolCall("str_replace_editor", view)))
        steps += [Step("I'll fix the bug.", ToolCall("str_replace_editor", {"command": "str_replace", "path": path,
                                                                             "old_str": old, "new_str": new}))
                  for old, new in hunk_edits(text, patched)]
    return [*steps, Step("Submitting.", ToolCall("submit", {}))]


def _definition(text: str, line: int) -> tuple[str, int] | None:
    """(grep pattern, first line) of the innermost function or class around `line` (1-based); None at module level."""
    with _AST_LOCK:
        tree = ast.parse(text)
    around = [node for node in ast.walk(tree)
              if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
              and node.lineno <= line <= node.end_lineno]
    if not around:
        return None
    node = max(around, key=lambda node: node.lineno)
    return (f"class {node.name}" if isinstance(node, ast.ClassDef) else f"def {node.name}("), node.lineno


def _edit_lines(text: str, old: str, new: str) -> tuple[int, int, int]:
    """(first line of `old`, first changed line, last line of `old`) of an edit whose `old` occurs once in `text`,
    1-based."""
    first = text[:text.index(old)].count("\n") + 1
    old_lines, new_lines = old.split("\n"), new.split("\n")
    same = next((i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False)) if a != b),
                len(old_lines) - 1)
    return first, first + same, first + len(old_lines) - 1


def traceable(buggy_text: str, changed_line: int, first_failure: str, python_texts: list[str]) -> bool:
    """Whether `debug_expert_plan`'s every call can be read off what the agent sees, for a bug that changed
    `changed_line` (1-based) of `buggy_text`: the line lies in a function (not at module level) whose name the first
    failing test's output (`first_failure`, its `--tb=short` block) shows, that name has one `def` among the
    repository's Python files (`python_texts`, tests included: grep answers one line), and the line is among the
    `VIEW_LINES` that sed prints from there.

    A pure function of the texts: the task factory keeps only such tasks when asked (`traceable_only`)."""
    definition = _definition(buggy_text, changed_line)
    if definition is None or not definition[0].startswith("def "):
        return False
    pattern, start = definition
    name = pattern[len("def "):-1]
    if not re.search(rf"\b{re.escape(name)}\b", first_failure):
        return False
    defined = sum(len(re.findall(rf"^\s*(?:async\s+)?{re.escape(pattern)}", text, re.MULTILINE))
                  for text in python_texts)
    return defined == 1 and changed_line < start + VIEW_LINES


def debug_expert_plan(instance: dict, read_file: Callable[[str], str]) -> list[Step]:
    """Run the report's first failing test, find and read the function, edit it, run the test again, submit.

    Every call is read off what the agent sees: the test id from the report, the function's name from the
    traceback (when the failure happens inside it), the file and line from grep's answer, the edit's old text from
    sed's (plain lines, no line numbers). The monologue is one fixed sentence per kind of step.
    """
    from unidiff import PatchSet

    test = sorted(json.loads(instance["FAIL_TO_PASS"]))[0]  # the report's first (statements.py sorts them)
    # The id right after `-m pytest `, as the report writes it: the call continues the report's line, the plainest
    # copy there is. The project's pytest addopts are off: they may need plugins the image lacks.
    run_test = f"cd {ROOT} && python3 -m pytest {shlex.quote(test)} -q -o addopts= --tb=short"
    steps = [Step(THOUGHTS["test"], ToolCall("bash", {"command": run_test}))]
    for patched in PatchSet(instance["patch"]):
        path, text = f"{ROOT}/{patched.path}", read_file(patched.path)
        shown: range = range(0)  # the lines of this file the agent last printed
        for old, new in hunk_edits(text, patched, min_context=0):  # the minimal edit
            first, changed, last = _edit_lines(text, old, new)
            if first not in shown or last not in shown:
                definition = _definition(text, changed)
                if definition:
                    steps.append(Step(THOUGHTS["find"], ToolCall("bash", {
                        "command": f"grep -rn --include='*.py' '{definition[0]}' {ROOT}"})))
                # from the definition's line (grep printed it) when the edit lies within the lines shown from there
                fits = definition and definition[1] <= first and last < definition[1] + VIEW_LINES
                start = definition[1] if fits else max(1, first - 5)
                shown = range(start, max(start + VIEW_LINES, last + 1))
                steps.append(Step(THOUGHTS["read"], ToolCall("bash", {
                    "command": f"sed -n '{start},+{len(shown) - 1}p' {path}"})))
            steps.append(Step(THOUGHTS["edit"], ToolCall("str_replace_editor", {
                "command": "str_replace", "path": path, "old_str": old, "new_str": new})))
            text = text.replace(old, new, 1)
    return [*steps, Step(THOUGHTS["retest"], ToolCall("bash", {"command": run_test})),
            Step(THOUGHTS["submit"], ToolCall("submit", {}))]


def plan_for(instance: dict, short: bool = False) -> Callable[[dict, Callable[[str], str]], list[Step]]:
    """The expert's procedure for `instance`: `short_expert_plan` if asked, swe-mini's full plan for a task with a
    `repro` script, else the debugging procedure (the task factory's tasks)."""
    if short:
        return short_expert_plan
    return expert_plan if instance.get("repro") else debug_expert_plan


def run_expert(instance: dict, sandbox: Sandbox, short: bool = False) -> AgentRun:
    """Plan (`plan_for` picks the procedure), run the plan through the agent loop in `sandbox`, and insist on the
    gold patch."""
    workdir = sandbox.config.workdir
    plan = plan_for(instance, short)(instance, lambda path: sandbox.read_file(f"{workdir}/{path}").decode())
    policy = ReplayPolicy(Trajectory(instance["instance_id"], instance["problem_statement"], plan))
    run = run_agent(policy, sandbox, instance["problem_statement"], instance["instance_id"],
                    AgentConfig(max_steps=len(plan), max_format_errors=0))
    if run.exit_status != "submitted" or not patches_match(run.patch, instance["patch"]):
        raise RuntimeError(f"{instance['instance_id']}: the scripted expert did not reproduce the gold patch "
                           f"(exit {run.exit_status})")
    traj = run.trajectory
    traj.resolved = True
    traj.metadata.update(source="swe-mini scripted expert" if instance.get("repro") else "task-factory scripted expert",
                         repo=instance["repo"],
                         base_commit=instance["base_commit"], FAIL_TO_PASS=json.loads(instance["FAIL_TO_PASS"]))
    return run
