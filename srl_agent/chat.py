"""Chat templates: the agent's system prompt, srl-agent's own template, and a tokenizer's template at work.

The step builder writes prompts with the system prompt; the tiny tokenizer is trained with srl-agent's template
and ships it. A tokenizer's template renders prompts (`render_prompt`) and the expert's answer as the model would
write it (`expert_answer`, the SFT target); `template_rendering` reads the call style and monologue placement
off a template (srl-agent's own for a tokenizer without a usable one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .actions import CALL_STYLES, CallStyle, Reasoning, assistant_message
from .errors import UserError
from .paths import ASSETS_DIR
from .types import ToolCall

SYSTEM_PROMPT = (
    "You are a software engineering agent working in a code repository to resolve an issue. "
    "You act one step at a time: each turn, first think inside <think>...</think>, then make exactly "
    "one tool call. The tool's output comes back in the next turn. When the issue is resolved, call "
    "`submit`."
)
CHAT_TEMPLATE_PATH = ASSETS_DIR / "chat_template.jinja"
"""The Hermes-style template (<|im_start|> turns, <tool_call> JSON calls) for tokenizers without a usable one."""


def render_prompt(tokenizer, messages: list[dict[str, Any]], tools: list[dict] | None,
                  generation: bool = True) -> str:
    """The text the model reads: `messages` through the tokenizer's chat template."""
    return tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=generation)


def expert_answer(tokenizer, prompt: list[dict[str, Any]], tools: list[dict] | None, thought: str, call: ToolCall,
                  call_style: CallStyle, reasoning: Reasoning) -> tuple[str, str]:
    """(answer, end of turn): the expert's turn as the chat template writes it, split into what a perfect
    policy generates and the special token that ends it; prompt + answer + end tokenize as the whole
    conversation does (the SFT target)."""
    head = render_prompt(tokenizer, prompt, tools)
    turn = assistant_message(thought, call, call_style, reasoning)
    tail = render_prompt(tokenizer, [*prompt, turn], tools, generation=False)
    ends = [t for t in tokenizer.get_added_vocab() if tail.rstrip().endswith(t)] if tail.startswith(head) else []
    if not ends:
        raise UserError("the chat template does not render an answer as a continuation of its prompt ending in a "
                        "special token (appending a turn changes the text before it): use a prefix-preserving template")
    end = max(ends, key=len)
    return tail[len(head):].rstrip()[:-len(end)], end


def _template_text(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the one for tools
        template = template.get("tool_use") or template.get("default")
    return template


def detect_call_style(template: str | None) -> tuple[CallStyle, Reasoning] | None:
    """The call style and monologue placement a chat template's tool calls imply; None for a template
    that renders no tools (or no template); UserError for tool calls in a syntax srl-agent does not know."""
    if not template or "tools" not in template:
        return None
    if "<tool_call>" in template and '"arguments": ' in template and "<function=" not in template:
        return "hermes", "native" if "reasoning_content" in template else "content"  # Qwen2.5(-Coder), Qwen3
    if '"parameters": ' in template and "<|start_header_id|>" in template:  # Llama 3.1 / 3.2
        return "llama", "content"
    raise UserError("the chat template writes tool calls in a syntax srl-agent cannot tell apart (it knows Hermes "
                    "<tool_call> JSON and Llama 3.1 JSON): set call_style to hermes, xml or llama (--call-style)")


def template_rendering(tokenizer, call_style: str = "auto", log: Callable[[str], None] = print,
                       name: str = "the tokenizer") -> tuple[CallStyle, Reasoning]:
    """(call style, monologue placement) for a tokenizer; `call_style` other than `auto` wins.

    A tokenizer without a chat template, or with one that cannot render tools, gets srl-agent's own
    (Hermes-style) template, with a warning.
    """
    template = _template_text(tokenizer)
    detected = detect_call_style(template) if call_style == "auto" else None
    if not template or "tools" not in template:
        what = "no chat template" if not template else "a chat template without tool calls"
        log(f"warning: {name} has {what}: using srl-agent's own template (Hermes <tool_call> calls, "
            "<|im_start|> turns); train with it before evaluating")
        tokenizer.chat_template = CHAT_TEMPLATE_PATH.read_text()
        detected = ("hermes", "content")
    if call_style == "auto":
        return detected
    if call_style not in CALL_STYLES:
        raise UserError(f"unknown call style {call_style!r}; choose auto or one of {', '.join(CALL_STYLES)}")
    native = call_style == "hermes" and "reasoning_content" in (_template_text(tokenizer) or "")
    return call_style, "native" if native else "content"
