"""The SRL reward: exact metrics, granularities, the -1 format penalty and the trainer adapters."""

from __future__ import annotations

import difflib
import json
import random
import subprocess
import sys

import pytest

from srl_agent.actions import render_completion
from srl_agent.reward import (
    SRLRewardConfig,
    TRLRewardFunction,
    action_similarity,
    compute_score,
    similarities,
    similarity,
    srl_reward,
    srl_rewards,
)
from srl_agent.types import ToolCall

from .conftest import cli_error


def random_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    alphabet = "abcdef ()_=\n'\"/."
    pairs = []
    for _ in range(n):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        # b: a mutated copy half the time (realistic near-misses), unrelated otherwise
        if rng.random() < 0.5:
            b = "".join(c if rng.random() > 0.2 else rng.choice(alphabet) for c in a)
        else:
            b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("autojunk,n", [(True, 10_000), (False, 2_000)])
def test_difflib_metric_identical_to_python_on_10000_pairs(autojunk, n):
    pairs = random_pairs(n, seed=int(autojunk))
    expected = [difflib.SequenceMatcher(None, a, b, autojunk).ratio() for a, b in pairs]
    assert [similarity(a, b, "difflib", autojunk) for a, b in pairs] == expected
    assert similarities(pairs, "difflib", autojunk, workers=1) == expected
    assert similarities(pairs, "difflib", autojunk, workers=2) == expected


def test_difflib_autojunk_matters_for_long_actions():
    # Past 200 characters, autojunk drops "popular" characters from the index: a near-identical
    # edit then scores almost nothing, which is why the paper's unstated choice is exposed.
    a = "def f(x):\n    return x + 1\n" * 10
    b = "def f(y):\n    return y + 2\n" * 10
    assert similarity(a, b, autojunk=True) < 0.05
    assert similarity(a, b, autojunk=False) > 0.85


def lcs_ratio(a: str, b: str) -> float:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return 2 * prev[-1] / (len(a) + len(b)) if a or b else 1.0


def test_lcs_metric_is_exact():
    pairs = random_pairs(300, seed=3)
    expected = [lcs_ratio(a, b) for a, b in pairs]
    assert [similarity(a, b, "lcs") for a, b in pairs] == pytest.approx(expected, abs=1e-12)
    assert similarities(pairs, "lcs", workers=2) == pytest.approx(expected, abs=1e-12)


EXPERT = ToolCall("str_replace_editor", {"command": "str_replace", "path": "/testbed/a.py",
                                         "old_str": "return a/b", "new_str": "return a / b if b else 0"})


def test_perfect_answer_scores_one_and_broken_format_minus_one():
    assert srl_reward(render_completion("fix it", EXPERT), EXPERT) == 1.0
    assert srl_reward("<think>fix</think>", EXPERT) == -1.0
    assert srl_reward('<tool_call>{"name": "submit", "arguments": {}}</tool_call>', EXPERT) == -1.0


def test_string_granularity_is_the_paper_ratio_of_command_lines():
    policy = ToolCall("bash", {"command": "sed -i 's#return a/b#return a / b#' /testbed/a.py"})
    expected = difflib.SequenceMatcher(
        None, policy.arguments["command"],
        "str_replace_editor str_replace /testbed/a.py --old_str return/b --new_str 'x'").ratio()
    assert srl_reward(render_completion("t", policy), EXPERT) != expected  # sanity: depends on the expert
    exp_line = ("str_replace_editor str_replace /testbed/a.py --old_str 'return a/b' "
                "--new_str 'return a / b if b else 0'")
    assert srl_reward(render_completion("t", policy), EXPERT) == difflib.SequenceMatcher(
        None, policy.arguments["command"], exp_line).ratio()


def test_fields_granularity():
    cfg = SRLRewardConfig(granularity="fields")
    other_tool = ToolCall("bash", {"command": "str_replace_editor str_replace /testbed/a.py"})
    assert action_similarity(other_tool, EXPERT, cfg) == 0.0
    half = ToolCall("str_replace_editor", {"command": "str_replace", "path": "/testbed/a.py",
                                           "old_str": "return a/b", "new_str": "return a / b if b else 0",
                                           "insert_line": 3})
    assert action_similarity(half, EXPERT, cfg) == pytest.approx(4 / 5)  # one extra argument scores 0
    wrong_path = ToolCall("str_replace_editor", dict(EXPERT.arguments, path="/testbed/b.py"))
    expected = (3 + difflib.SequenceMatcher(None, "/testbed/b.py", "/testbed/a.py").ratio()) / 4
    assert action_similarity(wrong_path, EXPERT, cfg) == pytest.approx(expected)
    assert action_similarity(ToolCall("submit", {}), ToolCall("submit", {}), cfg) == 1.0


@pytest.mark.parametrize("cfg", [SRLRewardConfig(), SRLRewardConfig(metric="lcs"),
                                 SRLRewardConfig(granularity="fields"), SRLRewardConfig(autojunk=False)])
def test_batch_equals_one_by_one(cfg):
    rng = random.Random(7)
    experts = [EXPERT, ToolCall("bash", {"command": "pytest -x tests/test_a.py"}), ToolCall("submit", {})]
    candidates = [
        render_completion("t", EXPERT),
        render_completion("t", ToolCall("bash", {"command": "pytest tests/"})),
        render_completion("t", ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/a.py"})),
        render_completion("t", ToolCall("submit", {})),
        "<think>nothing</think>",
    ]
    completions = [rng.choice(candidates) for _ in range(200)]
    chosen = [rng.choice(experts) for _ in range(200)]
    one_by_one = [srl_reward(c, e, cfg) for c, e in zip(completions, chosen, strict=True)]
    assert srl_rewards(completions, chosen, cfg, workers=2) == one_by_one


def test_trl_reward_function_reads_the_expert_action_column():
    fn = TRLRewardFunction()
    assert fn.__name__ == "srl_reward"
    good = render_completion("t", EXPERT)
    column = [EXPERT.to_json(), EXPERT.to_dict()]
    assert fn(prompts=["p", "p"], completions=[good, "junk"], expert_action=column) == [1.0, -1.0]
    conversational = [[{"role": "assistant", "content": good}]]
    assert fn(prompts=[[]], completions=conversational, expert_action=[EXPERT.to_json()]) == [1.0]
    parsed_calls = [[{"role": "assistant", "content": "<think>t</think>", "tool_calls": [
        {"type": "function", "function": {"name": EXPERT.name, "arguments": EXPERT.arguments}}]}]]
    assert fn(prompts=[[]], completions=parsed_calls, expert_action=[EXPERT.to_json()]) == [1.0]
    with pytest.raises(ValueError, match="expert_action"):
        fn(prompts=["p"], completions=[good])


def test_verl_compute_score():
    good = render_completion("t", EXPERT)
    assert compute_score("swe-srl", good, EXPERT.to_json()) == 1.0
    assert compute_score("swe-srl", "no", EXPERT.to_dict()) == -1.0
    near = render_completion("t", ToolCall("bash", {"command": "cat /testbed/a.py"}))
    assert compute_score("swe-srl", near, EXPERT.to_json(), {"metric": "lcs"}) == pytest.approx(
        srl_reward(near, EXPERT, SRLRewardConfig(metric="lcs")))


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_reward_cli_prints_the_reward_last():
    proc = run_cli("reward", "--expert", EXPERT.to_json(), "--completion", render_completion("t", EXPERT))
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "1.000000"
    proc = run_cli("reward", "--expert", EXPERT.to_json(), "--completion", "-", stdin="garbage")
    assert proc.stdout.strip().splitlines()[-1] == "-1.000000"
    assert "format violation" in proc.stderr
    proc = run_cli("reward", "--expert", "{not json", "--completion", "x")
    assert proc.returncode == 2 and "--expert is not a tool call" in proc.stderr and "Traceback" not in proc.stderr


def test_reward_cli_batch(tmp_path):
    rows = [{"completion": render_completion("t", EXPERT), "expert_action": EXPERT.to_json()},
            {"completion": "bad", "expert_action": EXPERT.to_dict()}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("reward", "--batch", str(src), "--out", str(tmp_path / "out.jsonl"), "--metric", "lcs")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["reward"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [1.0, -1.0]
    assert proc.stdout.strip().splitlines()[-1] == "0.000000"
    src.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"completion": "x"}) + "\n")
    proc = run_cli("reward", "--batch", str(src))
    assert proc.returncode == 2 and f"{src}: row 2: needs 'completion' and 'expert_action'" in proc.stderr


def test_reward_cli_names_a_file_it_cannot_read(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"completion": "x", "expert_action": EXPERT.to_json()}) + "\n{oops\n")
    truncated = tmp_path / "expert.json"
    truncated.write_text(EXPERT.to_json()[:20])
    not_a_call = tmp_path / "list.json"
    not_a_call.write_text("[1, 2]")
    missing = tmp_path / "missing.jsonl"
    cases = {  # reward arguments -> the error line
        ("--batch", str(missing)): f"{missing}: cannot read: no such file or directory",
        ("--batch", str(tmp_path)): f"{tmp_path}: cannot read: is a folder, not a file",
        ("--batch", str(rows)): f"{rows}: row 2: line is not valid JSON (Expecting property name enclosed in double "
                                "quotes at column 2)",
        ("--expert", f"@{missing}"): f"{missing}: cannot read: no such file or directory",
        ("--expert", f"@{tmp_path}"): f"{tmp_path}: cannot read: is a folder, not a file",
        ("--expert", f"@{truncated}"): f"{truncated}: not valid JSON: Unterminated string starting at line 1 column "
                                       "10 (the file looks truncated)",
        ("--expert", f"@{not_a_call}"): f"{not_a_call}: expert is not a tool call JSON object: a tool call needs a "
                                        "string 'name', got '[1, 2]'",
    }
    for args, message in cases.items():
        assert cli_error(capsys, "reward", *args, "--completion", "x") == f"error: {message}", args


def test_a_legacy_tool_the_prompt_offers_is_scored_like_any_other(all_trajectories):
    from srl_agent.steps import StepConfig, examples_from_trajectory

    # marshmallow's expert used SWE-agent's windowed tools, so its prompts offer them at every step
    examples = examples_from_trajectory(all_trajectories["marshmallow-code__marshmallow-1867"], StepConfig())
    ex = next(e for e in examples if e.expert.name == "bash")
    assert "open" in ex.tool_names
    legacy = render_completion("t", ToolCall("open", {"path": "src/marshmallow/fields.py"}))
    score = srl_reward(legacy, ex.expert, offered=ex.tool_names)
    assert 0 <= score < 1 and score == action_similarity(ToolCall("open", {"path": "src/marshmallow/fields.py"}),
                                                         ex.expert)
    assert srl_rewards([legacy], [ex.expert], offered=[ex.tool_names]) == [score]
    assert srl_reward(legacy, ex.expert) == -1.0  # a prompt that did not offer it (no tool list: standard tools)
    assert srl_reward(legacy, ex.expert, offered=["bash", "submit"]) == -1.0
