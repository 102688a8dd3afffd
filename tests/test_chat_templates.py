"""Real model chat templates (the upstream ones TRL ships in its package) render our prompts and answers
faithfully: a call's arguments are encoded once, the expert's answer as the template writes it is what
the parser accepts, and prompt tokens + answer tokens are the whole conversation's tokens.

The tokenizer is the shipped tiny one with each template swapped in (and, for Llama, Llama's special
tokens added): no model hub."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
from transformers import AutoTokenizer

from srl_agent.actions import assistant_message, parse_completion
from srl_agent.chat import CHAT_TEMPLATE_PATH, detect_call_style, expert_answer, render_prompt, template_rendering
from srl_agent.errors import UserError
from srl_agent.steps import StepConfig, examples_from_trajectory
from srl_agent.tokenizer import TINY_TOKENIZER_DIR

LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                  "<|python_tag|>"]
# template -> (call style, where the monologue goes)
TEMPLATES = {"qwen2_5": ("hermes", "content"), "qwen3": ("hermes", "native"), "llama3_1": ("llama", "content"),
             "srl_agent": ("hermes", "content")}  # the shipped one
TRAJECTORIES = ["pandas-dev__pandas.95280573.pr_53856", "swemini__inventory-1"]


def trl_template(name: str) -> str:
    if name == "srl_agent":
        return CHAT_TEMPLATE_PATH.read_text()
    return (files("trl") / "chat_templates" / f"{name}.jinja").read_text()


def tokenizer_with(template: str | None):
    tok = AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR)  # a fresh copy: load_tokenizer's is shared
    if template is not None and "<|start_header_id|>" in template:
        tok.add_special_tokens({"additional_special_tokens": LLAMA_SPECIALS})
        tok.bos_token, tok.eos_token = "<|begin_of_text|>", "<|eot_id|>"
    tok.chat_template = template
    return tok


@pytest.fixture(scope="module")
def trajectories(all_trajectories):
    from srl_agent.formats import load_trajectories
    from srl_agent.paths import project_dir

    swe_mini = {t.id: t for t in load_trajectories([str(project_dir("trajectories") / "swe-mini.jsonl")])}
    return [all_trajectories.get(i) or swe_mini[i] for i in TRAJECTORIES]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_real_template_renders_calls_once_and_answers_as_the_parser_reads_them(name, trajectories):
    tok = tokenizer_with(trl_template(name))
    style, reasoning = template_rendering(tok, "auto")
    assert (style, reasoning) == TEMPLATES[name]
    cfg = StepConfig(call_style=style, reasoning=reasoning)
    checked = 0
    for traj in trajectories:
        examples = examples_from_trajectory(traj, cfg)
        answers = []
        for ex in examples:
            prompt = render_prompt(tok, ex.prompt, ex.tools)
            # every history call's arguments appear encoded once, never as a JSON string
            for step in traj.steps[ex.step_index - ex.history_steps:ex.step_index]:
                once = json.dumps(step.action.arguments, ensure_ascii=False)
                assert once in prompt
                assert json.dumps(once, ensure_ascii=False)[1:-1] not in prompt or once == "{}"
            # the expert's answer as the template writes that turn parses back to the expert's call
            answer, end = expert_answer(tok, ex.prompt, ex.tools, ex.expert_thought, ex.expert, cfg.call_style,
                                        cfg.reasoning)
            assert end == tok.eos_token
            parsed = parse_completion(answer, style, set(ex.tool_names))
            assert (parsed.call.name, parsed.call.arguments) == (ex.expert.name, ex.expert.arguments)
            assert parsed.thought == ex.expert_thought.strip()
            # and the history shows earlier answers exactly as the policy wrote them
            for previous in answers[max(0, ex.step_index - ex.history_steps):]:
                assert previous in prompt
            answers.append(answer)
            # token-in/token-out: prompt ids + answer ids + end of turn = the whole conversation's ids
            whole = render_prompt(tok, [*ex.prompt, assistant_message(ex.expert_thought, ex.expert, style, reasoning)],
                                  ex.tools, generation=False)
            ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
            sequence = ids(prompt) + ids(answer + end)
            assert sequence[-1] == tok.eos_token_id
            whole_ids = ids(whole)
            assert whole_ids[:len(sequence)] == sequence
            assert tok.decode(whole_ids[len(sequence):]).strip() == ""
            checked += 1
    assert checked == sum(len(t.steps) for t in trajectories)


def test_qwen3_monologue_goes_in_its_reasoning_block(trajectories):
    tok = tokenizer_with(trl_template("qwen3"))
    ex = examples_from_trajectory(trajectories[0], StepConfig(reasoning="native"))[3]
    turn = ex.prompt[-2]
    assert turn["content"] == "" and turn["reasoning_content"] == trajectories[0].steps[2].thought.strip()
    assert f"<think>\n{turn['reasoning_content']}\n</think>\n\n<tool_call>" in render_prompt(tok, ex.prompt, ex.tools)


def test_the_shipped_template_no_longer_hides_string_arguments():
    # A JSON-string `arguments` comes out encoded twice, as with Qwen2.5's own template, so a caller
    # that passes one is caught by the tests above instead of rendering plausibly.
    tok = tokenizer_with(CHAT_TEMPLATE_PATH.read_text())
    message = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": "ls"})}}]}
    text = render_prompt(tok, [{"role": "user", "content": "x"}, message], None, generation=False)
    assert '"arguments": "{\\"command\\": \\"ls\\"}"' in text


def test_templates_without_tools_get_ours_with_a_warning_and_unknown_syntax_an_error():
    lines = []
    for template in (None, trl_template("llama3")):  # no template; Llama 3's, which renders no tools
        tok = tokenizer_with(template)
        assert template_rendering(tok, "auto", lines.append, "m") == ("hermes", "content")
        assert tok.chat_template == CHAT_TEMPLATE_PATH.read_text()
    assert len(lines) == 2 and all(line.startswith("warning: m has ") for line in lines)
    assert "no chat template" in lines[0] and "without tool calls" in lines[1]
    with pytest.raises(UserError, match="set call_style to hermes, xml or llama"):
        detect_call_style(trl_template("qwen3_5_think"))  # <tool_call> around <function=...>: not ours
    assert template_rendering(tokenizer_with(trl_template("qwen3_5_think")), "xml") == ("xml", "content")
