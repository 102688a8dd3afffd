"""Oracle File Edit: search/replace answers become unified diffs that git applies."""

from __future__ import annotations

import subprocess

import pytest

from srl_agent.bench.oracle import apply_edits, oracle_patch, oracle_prompt, parse_edits, touched_files
from srl_agent.errors import FormatViolation

from .conftest import CALC, make_repo

ANSWER = """<think>mean adds one too many.</think>
### calc.py
<<<<<<< SEARCH
    return sum(values) / len(values) + 1
=======
    return sum(values) / len(values)
>>>>>>> REPLACE

### NOTES.md
<<<<<<< SEARCH
=======
mean fixed
>>>>>>> REPLACE
"""


def test_answer_to_patch_that_git_applies(tmp_path):
    repo = make_repo(tmp_path / "calc", CALC)
    patch = oracle_patch(ANSWER, {"calc.py": CALC["calc.py"]})
    assert touched_files(patch) == ["NOTES.md", "calc.py"]
    (tmp_path / "p.diff").write_text(patch)
    subprocess.run(["git", "-C", str(repo), "apply", "--check", str(tmp_path / "p.diff")], check=True)
    subprocess.run(["git", "-C", str(repo), "apply", str(tmp_path / "p.diff")], check=True)
    assert (repo / "NOTES.md").read_text() == "mean fixed\n"
    out = subprocess.run(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=repo, capture_output=True,
                         text=True)
    assert "2 passed" in out.stdout


def test_bad_answers_are_format_violations():
    files = {"calc.py": CALC["calc.py"]}
    with pytest.raises(FormatViolation, match="no search/replace block"):
        oracle_patch("<think>hmm</think> I would change calc.py", files)
    with pytest.raises(FormatViolation, match="occurs 0 times"):
        oracle_patch(ANSWER.replace("len(values) + 1\n=", "len(vals) + 1\n="), files)
    with pytest.raises(FormatViolation, match="occurs 2 times"):
        apply_edits({"a.py": "x\nx\n"}, parse_edits("### a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"))


def test_prompt_holds_the_issue_and_the_files():
    messages = oracle_prompt("mean() is off by one.", {"calc.py": CALC["calc.py"]})
    assert "SEARCH" in messages[0]["content"]
    assert "<issue>\nmean() is off by one.\n</issue>" in messages[1]["content"]
    assert "### calc.py\n```\ndef divide" in messages[1]["content"]
