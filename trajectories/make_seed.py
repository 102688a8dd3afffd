"""Make the seed set of expert trajectories shipped in this folder (seed.jsonl).

Twelve small Python tasks, each a one-line bug with a failing test. A scripted expert solves each one
with the steps a SWE agent takes (look around, read the code, reproduce, edit, re-run, submit), and
every step is executed for real in a sandbox, so the observations are what the tools print.
Part of the default training data, beside the swe-mini expert's runs (swe-mini.jsonl).

    python trajectories/make_seed.py [--sandbox auto|docker|bwrap]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from srl_agent.jsonio import write_jsonl
from srl_agent.run_call import execute
from srl_agent.sandbox import SandboxConfig, open_sandbox
from srl_agent.types import Step, ToolCall, Trajectory

# (task id, module, buggy source, (old, new), test source, issue text, why)
TASKS = [
    ("stats-mean", "stats", "def mean(values):\n    return sum(values) / len(values) + 1\n",
     ("len(values) + 1", "len(values)"),
     "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n",
     "mean([1, 2, 3]) returns 3.0 instead of 2.0.", "mean adds a stray 1 to the average"),
    ("calc-divide", "calc", "def divide(a, b):\n    return a * b\n", ("a * b", "a / b"),
     "from calc import divide\n\n\ndef test_divide():\n    assert divide(6, 3) == 2\n",
     "divide(6, 3) returns 18 instead of 2.", "divide multiplies instead of dividing"),
    ("parity-even", "parity", "def is_even(n):\n    return n % 2 == 1\n", ("n % 2 == 1", "n % 2 == 0"),
     "from parity import is_even\n\n\ndef test_even():\n    assert is_even(4)\n    assert not is_even(3)\n",
     "is_even(4) is False.", "is_even tests for a remainder of 1, which is odd"),
    ("bounds-clamp", "bounds", "def clamp(x, low, high):\n    return min(low, max(x, high))\n",
     ("min(low, max(x, high))", "max(low, min(x, high))"),
     "from bounds import clamp\n\n\ndef test_clamp():\n    assert clamp(5, 0, 10) == 5\n"
     "    assert clamp(-1, 0, 10) == 0\n",
     "clamp(5, 0, 10) returns 0.", "clamp has min and max swapped"),
    ("text-reverse-words", "text", "def reverse_words(s):\n    return ''.join(reversed(s.split()))\n",
     ("''.join", "' '.join"), "from text import reverse_words\n\n\ndef test_reverse():\n"
     "    assert reverse_words('a b c') == 'c b a'\n", "reverse_words('a b c') gives 'cba'.",
     "reverse_words joins the words without spaces"),
    ("text-vowels", "vowels", "def count_vowels(s):\n    return sum(c in 'aeio' for c in s.lower())\n",
     ("'aeio'", "'aeiou'"), "from vowels import count_vowels\n\n\ndef test_vowels():\n"
     "    assert count_vowels('Lulu') == 2\n", "count_vowels('Lulu') returns 0.", "the vowel set lacks u"),
    ("math-factorial", "factorial", "def factorial(n):\n    result = 1\n    for k in range(1, n):\n"
     "        result *= k\n    return result\n", ("range(1, n)", "range(1, n + 1)"),
     "from factorial import factorial\n\n\ndef test_factorial():\n    assert factorial(4) == 24\n",
     "factorial(4) returns 6.", "the loop stops before n"),
    ("units-fahrenheit", "units", "def to_fahrenheit(c):\n    return c * 9 / 5 + 23\n", ("+ 23", "+ 32"),
     "from units import to_fahrenheit\n\n\ndef test_boiling():\n    assert to_fahrenheit(100) == 212\n",
     "to_fahrenheit(100) returns 203.", "the offset is 23 instead of 32"),
    ("text-title", "titles", "def title_case(s):\n    return ' '.join(w.lower() for w in s.split())\n",
     ("w.lower()", "w.capitalize()"), "from titles import title_case\n\n\ndef test_title():\n"
     "    assert title_case('hello world') == 'Hello World'\n", "title_case('hello world') is unchanged.",
     "title_case lower-cases words instead of capitalising them"),
    ("lists-largest", "largest", "def largest(values):\n    return min(values)\n", ("min(values)", "max(values)"),
     "from largest import largest\n\n\ndef test_largest():\n    assert largest([3, 9, 4]) == 9\n",
     "largest([3, 9, 4]) returns 3.", "largest calls min"),
    ("money-percent", "percent", "def percent(part, whole):\n    return part / whole * 10\n",
     ("* 10\n", "* 100\n"), "from percent import percent\n\n\ndef test_half():\n    assert percent(1, 2) == 50\n",
     "percent(1, 2) returns 5.0.", "percent scales by 10 instead of 100"),
    ("text-prefix", "prefix", "def strip_prefix(s, prefix):\n    if s.startswith(prefix):\n"
     "        return s[len(prefix) + 1:]\n    return s\n", ("len(prefix) + 1", "len(prefix)"),
     "from prefix import strip_prefix\n\n\ndef test_strip():\n    assert strip_prefix('foobar', 'foo') == 'bar'\n",
     "strip_prefix('foobar', 'foo') returns 'ar'.", "the slice skips one character too many"),
]


def make_repo(root: Path, module: str, source: str, test: str) -> Path:
    (root / f"{module}.py").write_text(source)
    (root / f"test_{module}.py").write_text(test)
    git = ["git", "-c", "user.name=seed", "-c", "user.email=seed@srl-agent.invalid", "-C", str(root)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run([*git, *args], check=True)
    return root


def solve(task, sandbox_kind: str) -> Trajectory:
    task_id, module, source, (old, new), test, issue, why = task
    path = f"/testbed/{module}.py"
    plan = [
        ("Let me look at the repository layout first.", ToolCall("bash", {"command": "ls"})),
        (f"The issue is about {module}.py; let me read it.",
         ToolCall("str_replace_editor", {"command": "view", "path": path})),
        ("Run the tests to reproduce the failure.", ToolCall("bash", {"command": "python3 -m pytest -q"})),
        (f"The bug: {why}. Fix that line.",
         ToolCall("str_replace_editor", {"command": "str_replace", "path": path, "old_str": old, "new_str": new})),
        ("Run the tests again to check the fix.", ToolCall("bash", {"command": "python3 -m pytest -q"})),
        ("The tests pass now, so submit the change.", ToolCall("submit", {})),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), module, source, test)
        with open_sandbox(SandboxConfig(), kind=sandbox_kind, repo=str(repo)) as sandbox:
            steps = [Step(thought, call, execute(sandbox, call, timeout=60).output) for thought, call in plan]
            patch = sandbox.diff()
    if "passed" not in steps[4].observation:
        raise RuntimeError(f"{task_id}: the scripted fix did not make the tests pass:\n{steps[4].observation}")
    return Trajectory(task_id, issue, steps, patch=patch, resolved=True, source_format="canonical",
                      metadata={"generator": "trajectories/make_seed.py"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandbox", default="auto", choices=["auto", "docker", "bwrap"])
    parser.add_argument("--out", default=str(Path(__file__).with_name("seed.jsonl")))
    args = parser.parse_args()
    trajectories = [solve(task, args.sandbox) for task in TASKS]
    write_jsonl(args.out, (t.to_dict() for t in trajectories))
    print(f"wrote {len(trajectories)} trajectories to {args.out}")


if __name__ == "__main__":
    main()
