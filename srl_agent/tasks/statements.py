"""Problem statements for synthesized bugs, written without a model from the failing tests.

A statement reads like a user's report: which tests fail, how to run them, the assertion message and
a short traceback. It must not give the fix away, so traceback frames in the package's own files
(where the bug is) are cut, and no line that names a package source file survives; the tests'
frames and the error lines stay. An optional OpenAI-compatible model (`--writer URL`) can rewrite it
in its own words; a rewrite that names a source file is not used.
"""

from __future__ import annotations

import functools
import random
import re
import shlex

from ..errors import UserError
from ..policy import SamplingParams
from ..policy.openai import OpenAIPolicy

_FRAME = re.compile(r"^(\S+\.py):\d+: in \S+")
MAX_TESTS = 3
MAX_LINES = 14

_INTROS = ("I ran the test suite on the current code and some tests fail.",
           "After pulling the latest changes, part of the test suite is failing for me.",
           "Some tests fail on a clean checkout of the repository.",
           "The test suite is not green: a few tests fail and I cannot see why.")
_OUTROS = ("The rest of the suite passes. These tests should pass too.",
           "Everything else passes, so something in the library changed behaviour.",
           "I expected these tests to pass; the other tests pass fine.")


def short_traceback(section: str, hidden_files: list[str], max_lines: int = MAX_LINES) -> str:
    """A failure's `--tb=short` block without frames in (or lines naming) the package's source files."""
    kept: list[str] = []
    in_hidden_frame = False
    for line in section.splitlines():
        frame = _FRAME.match(line)
        if frame:
            in_hidden_frame = any(frame[1].endswith(path) for path in hidden_files)
        if in_hidden_frame and not line.startswith("E "):
            continue
        if any(path in line for path in hidden_files) or line.startswith("-" * 10):
            continue
        kept.append(line.rstrip())
    while kept and not kept[-1].strip():
        kept.pop()
    if len(kept) > max_lines:  # keep the test's call site and the error at the end
        kept = [*kept[:3], "...", *kept[-(max_lines - 4):]]
    return "\n".join(kept)


def _error_line(traceback: str) -> str:
    errors = [line[1:].strip() for line in traceback.splitlines() if line.startswith("E ")]
    return next((e for e in errors if e), "")


def problem_statement(task_id: str, failures: dict[str, str], hidden_files: list[str]) -> str:
    """A user-style report from {failing test id: its failure block}; phrasing seeded by `task_id`."""
    rng = random.Random(task_id)
    tests = sorted(failures)
    shown = tests[:MAX_TESTS]
    first_error = _error_line(short_traceback(failures[shown[0]], hidden_files)) if shown else ""
    name = shown[0].split("::")[-1]
    if len(first_error) > 80:
        first_error = first_error[:77].rsplit(" ", 1)[0] + " ..."
    title = f"`{name}` fails" + (f": {first_error}" if first_error else "")
    lines = [f"# {title}", "", rng.choice(_INTROS), "", "To reproduce:", "", "```",
             f"python -m pytest {' '.join(map(shlex.quote, shown))}", "```", ""]  # ids may hold `[a b]`
    for test in shown:
        traceback = short_traceback(failures[test], hidden_files)
        lines += [f"`{test}` fails with:", "", "```", traceback or "(no traceback)", "```", ""]
    if len(tests) > len(shown):
        lines += [f"{len(tests) - len(shown)} more failing tests: "
                  + ", ".join(f"`{t}`" for t in tests[len(shown):len(shown) + 10])
                  + (" ..." if len(tests) > len(shown) + 10 else ""), ""]
    lines.append(rng.choice(_OUTROS))
    return "\n".join(lines) + "\n"


_WRITER_PROMPT = ("Rewrite the following bug report as a developer would write a GitHub issue for this "
                  "project: keep the failing test names, the commands and the error messages exactly, do not "
                  "guess where in the code the bug is or how to fix it. Answer with the issue text only.")


@functools.cache
def _writer(url: str, model: str, timeout: float, retries: int) -> OpenAIPolicy:
    """One client per writer (its connections are reused across the run's statements)."""
    return OpenAIPolicy(url, model, timeout=timeout, retries=retries)


def rewrite(statement: str, url: str, hidden_files: list[str], model: str = "default", timeout: float = 120,
            max_tokens: int = 1024, retries: int = 4) -> str:
    """Have an OpenAI-compatible chat model at `url` (…/v1) rewrite `statement`; keep ours if it leaks a file."""
    messages = [{"role": "system", "content": _WRITER_PROMPT}, {"role": "user", "content": statement}]
    try:
        (answers,) = _writer(url, model, timeout, retries).generate(
            [messages], None, SamplingParams(temperature=0.7, max_new_tokens=max_tokens))
        text = answers[0].text
    except (UserError, KeyError, IndexError, TypeError, ValueError) as e:
        raise UserError(f"--writer {url}: no usable answer ({type(e).__name__}: {str(e)[:200]})") from None
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL).strip()
    if not text or any(path in text for path in hidden_files):
        return statement
    return text + "\n"
