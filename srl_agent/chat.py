"""What every rendered conversation shares: the agent's system prompt and srl-agent's own chat template.

The step builder writes prompts with them and the tiny tokenizer is trained on them and ships the template.
"""

from __future__ import annotations

from .paths import ASSETS_DIR

SYSTEM_PROMPT = (
    "You are a software engineering agent working in a code repository to resolve an issue. "
    "You act one step at a time: each turn, first think inside <think>...</think>, then make exactly "
    "one tool call. The tool's output comes back in the next turn. When the issue is resolved, call "
    "`submit`."
)
CHAT_TEMPLATE_PATH = ASSETS_DIR / "chat_template.jinja"
"""The Hermes-style template (<|im_start|> turns, <tool_call> JSON calls) for tokenizers without a usable one."""
