"""Trajectories -> step-wise examples: history window, prompt shape, truncation and token counts."""

from __future__ import annotations

import json

import pytest

from srl_agent.actions import render_completion
from srl_agent.steps import (
    ExampleBuilder,
    StepConfig,
    TokenCounter,
    examples_from_trajectory,
    parse_history,
    truncate_middle,
)
from srl_agent.tokenizer import load_tokenizer
from srl_agent.types import StepExample, ToolCall

PANDAS = "pandas-dev__pandas.95280573.pr_53856"


def test_parse_history():
    assert parse_history("last-2") == 2 and parse_history("5") == 5 and parse_history("full") is None
    with pytest.raises(ValueError, match="last-N"):
        parse_history("two")


def test_one_example_per_step_with_the_last_two_steps(all_trajectories):
    traj = all_trajectories[PANDAS]
    examples = examples_from_trajectory(traj, StepConfig())
    assert len(examples) == len(traj.steps) == 17
    for k, ex in enumerate(examples):
        assert ex.step_index == k and ex.num_steps == 17
        assert ex.expert == traj.steps[k].action
        assert ex.history_steps == min(k, 2)
        roles = [m["role"] for m in ex.prompt]
        assert roles == ["system", "user"] + ["assistant", "tool"] * min(k, 2)
        assert traj.problem_statement in ex.prompt[1]["content"]
        if k > 3:
            assert f"({k - 2} earlier steps not shown.)" in ex.prompt[1]["content"]
    assert "(1 earlier step not shown.)" in examples[3].prompt[1]["content"]
    assert "not shown" not in examples[2].prompt[1]["content"]
    ex = examples[5]
    assert ex.prompt[-2]["tool_calls"][0]["function"]["arguments"] == traj.steps[4].action.arguments  # an object
    assert ex.prompt[-2]["content"] == f"<think>\n{traj.steps[4].thought.strip()}\n</think>"
    assert ex.prompt[-1]["content"] == truncate_middle(traj.steps[4].observation, 4000)
    assert [t["function"]["name"] for t in ex.tools] == ["bash", "str_replace_editor", "submit"]


def test_full_history_and_legacy_tools(all_trajectories):
    traj = all_trajectories["marshmallow-code__marshmallow-1867"]
    examples = examples_from_trajectory(traj, StepConfig(history=None))
    assert [ex.history_steps for ex in examples] == list(range(11))
    names = [t["function"]["name"] for t in examples[0].tools]
    assert names == ["bash", "str_replace_editor", "submit", "create", "insert", "find_file", "open", "edit"]


def test_truncation_is_deterministic_and_bounded():
    text = "".join(f"line {i}\n" for i in range(5000))
    cut = truncate_middle(text, 1000)
    assert cut == truncate_middle(text, 1000)
    assert cut.startswith(text[:500]) and cut.endswith(text[-500:])
    assert f"[... {len(text) - 1000} characters omitted ...]" in cut
    assert truncate_middle("short", 1000) == "short"


def test_example_json_round_trip(all_trajectories):
    for ex in examples_from_trajectory(all_trajectories[PANDAS], StepConfig()):
        assert StepExample.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex


def test_prompt_renders_through_the_chat_template_with_tools(all_trajectories):
    tok = load_tokenizer()
    traj = all_trajectories[PANDAS]
    ex = examples_from_trajectory(traj, StepConfig())[4]
    text = tok.apply_chat_template(ex.prompt, tools=ex.tools, tokenize=False, add_generation_prompt=True)
    assert '"name": "str_replace_editor"' in text and "<tools>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # The history's assistant turns render exactly as a perfect policy answer would.
    previous = render_completion(traj.steps[3].thought, traj.steps[3].action)
    assert f"<|im_start|>assistant\n{previous}<|im_end|>" in text


def test_cached_token_counts_equal_plain_tokenization(all_trajectories):
    tok = load_tokenizer()
    builder = ExampleBuilder(StepConfig(), tok)
    for traj in all_trajectories.values():
        examples = builder.build(traj)
        plain = [len(tok(builder.render(ex), add_special_tokens=False)["input_ids"]) for ex in examples]
        assert [ex.prompt_tokens for ex in examples] == plain
    assert not builder.counter.exact_only


def test_token_counter_falls_back_when_pieces_do_not_add_up():
    class MergingTokenizer:  # counts characters of the whole text: pieces never add up
        def get_added_vocab(self):
            return {"<s>": 0}

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [list(t) for t in texts]}

    counter = TokenCounter(MergingTokenizer())
    assert counter.count(["ab<s>cd"]) == [7]
    assert counter.exact_only


def test_max_prompt_tokens_shortens_history_then_drops(all_trajectories):
    traj = all_trajectories[PANDAS]
    tok = load_tokenizer()
    full = ExampleBuilder(StepConfig(), tok).build(traj)
    no_history = min(ex.prompt_tokens for ex in full if ex.history_steps == 0)
    budget = no_history + 300
    builder = ExampleBuilder(StepConfig(), tok, max_prompt_tokens=budget)
    kept = builder.build(traj)
    assert all(ex.prompt_tokens <= budget for ex in kept)
    assert len(kept) + builder.dropped == 17
    assert any(ex.history_steps < min(ex.step_index, 2) for ex in kept)
    tiny = ExampleBuilder(StepConfig(), tok, max_prompt_tokens=10)
    assert tiny.build(traj) == [] and tiny.dropped == 17


def test_xml_call_style_puts_schemas_in_the_system_turn(all_trajectories):
    ex = examples_from_trajectory(all_trajectories[PANDAS], StepConfig(call_style="xml"))[3]
    assert ex.tools == []
    assert '"name": "str_replace_editor"' in ex.prompt[0]["content"]
    assert "<function=" in ex.prompt[-2]["content"] and "tool_calls" not in ex.prompt[-2]


def test_examples_of_a_single_step_trajectory():
    from srl_agent.types import Step, Trajectory

    traj = Trajectory("t", "Fix it.", [Step("done", ToolCall("submit", {}), "")])
    (ex,) = examples_from_trajectory(traj, StepConfig())
    assert ex.history_steps == 0 and ex.expert == ToolCall("submit", {})
