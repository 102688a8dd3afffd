"""Trajectory -> step-wise SRL examples.

Example k of an N-step trajectory is the chat prompt an agent would have seen before expert step k,
and its target is step k's tool call. The prompt holds:

1. a system turn: the role, the output-format instruction and (through the chat template) the tool
   schemas;
2. the task: the problem statement, and how many earlier steps are left out;
3. the last `history` expert steps (the paper's SWE setting is 2), each an assistant turn
   (`<think>thought</think>` plus the tool call) and the tool's observation.

Long observations are truncated deterministically in the middle: the first half and the last half
of the character budget are kept, joined by a marker that says how many characters were left out
(the start of an output names what ran, the end holds errors and results).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .actions import CallStyle, render_xml_call
from .tools import STANDARD_TOOLS, load_tools, tool_schemas
from .types import StepExample, ToolCall, Trajectory

SYSTEM_PROMPT = (
    "You are a software engineering agent working in a code repository to resolve an issue. "
    "You act one step at a time: each turn, first think inside <think>...</think>, then make exactly "
    "one tool call. The tool's output comes back in the next turn. When the issue is resolved, call "
    "`submit`."
)
XML_FORMAT = (
    "\n\nWrite the call as <function=NAME><parameter=ARG>value</parameter></function>. "
    "The tools and their JSON-schema arguments:\n"
)


@dataclass
class StepConfig:
    """How trajectories are cut into examples."""

    history: int | None = 2
    """Previous expert steps in the prompt; None keeps them all (`--history full`)."""
    max_observation_chars: int = 4000
    """Observations longer than this are cut in the middle (see the module docstring)."""
    max_problem_chars: int = 12000
    """The problem statement is cut the same way beyond this."""
    call_style: CallStyle = "hermes"
    """How tool calls are written: `hermes` (<tool_call> JSON) or `xml` (<function=...>)."""


def parse_history(value: str) -> int | None:
    """`last-2` -> 2, `full` -> None, `5` -> 5."""
    text = value.strip().lower()
    if text == "full":
        return None
    text = text.removeprefix("last-")
    if not text.isdigit():
        raise ValueError(f"--history must be last-N, N or full, not {value!r}")
    return int(text)


def truncate_middle(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[-tail:] if tail else ''}"


def tools_for(traj: Trajectory) -> list[str]:
    """The standard tools, plus any legacy tool the expert used (in order of first use)."""
    names = list(STANDARD_TOOLS)
    specs = load_tools()
    for step in traj.steps:
        name = step.action.name
        if name not in names and name in specs:
            names.append(name)
    return names


def _assistant_turn(thought: str, call: ToolCall, style: CallStyle) -> dict[str, Any]:
    think = f"<think>\n{thought.strip()}\n</think>"
    if style == "xml":
        return {"role": "assistant", "content": f"{think}\n{render_xml_call(call)}"}
    return {"role": "assistant", "content": think, "tool_calls": [{
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}]}


def _system_turn(tool_names: list[str], style: CallStyle) -> dict[str, Any]:
    if style == "hermes":
        return {"role": "system", "content": SYSTEM_PROMPT}
    schemas = "\n".join(json.dumps(s["function"], ensure_ascii=False) for s in tool_schemas(tool_names))
    return {"role": "system", "content": SYSTEM_PROMPT + XML_FORMAT + schemas}


def _task_turn(problem: str, omitted: int) -> dict[str, Any]:
    text = f"Resolve this issue in the repository:\n\n<issue>\n{problem}\n</issue>"
    if omitted:
        text += f"\n\n({omitted} earlier step{'s' if omitted > 1 else ''} not shown.)"
    return {"role": "user", "content": text}


def build_prompt(traj: Trajectory, k: int, cfg: StepConfig, tool_names: list[str],
                 history: int | None = None) -> list[dict[str, Any]]:
    """The chat messages before step k, with `history` previous steps (default: cfg.history)."""
    keep = cfg.history if history is None else history
    start = 0 if keep is None else max(0, k - keep)
    problem = truncate_middle(traj.problem_statement, cfg.max_problem_chars)
    messages = [_system_turn(tool_names, cfg.call_style), _task_turn(problem, start)]
    for step in traj.steps[start:k]:
        messages.append(_assistant_turn(step.thought, step.action, cfg.call_style))
        messages.append({"role": "tool", "content": truncate_middle(step.observation, cfg.max_observation_chars)})
    return messages


def examples_from_trajectory(traj: Trajectory, cfg: StepConfig) -> list[StepExample]:
    """One example per step (without token counts; see ExampleBuilder)."""
    tool_names = tools_for(traj)
    schemas = tool_schemas(tool_names) if cfg.call_style == "hermes" else []
    n = len(traj.steps)
    out = []
    for k, step in enumerate(traj.steps):
        prompt = build_prompt(traj, k, cfg, tool_names)
        out.append(StepExample(traj.id, k, n, prompt, schemas, step.action.to_json(),
                               history_steps=(len(prompt) - 2) // 2, expert_thought=step.thought))
    return out


class TokenCounter:
    """Counts the tokens of rendered prompts, tokenizing each piece of text only once.

    Tokenizers split the input at their added (special) tokens before anything else, so a prompt's
    count is the sum over the pieces between special tokens plus one per special token. Consecutive
    examples of a trajectory share most pieces (system turn, task, history turns), so caching them
    makes counting several times faster. The first texts are also counted the plain way; if any
    count differs (a tokenizer that does not split that way), the counter falls back to plain
    counting for good.
    """

    VERIFY_TEXTS = 16

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        added = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, added)) + ")") if added else None
        self._cache: dict[str, int] = {}
        self._verified = 0
        self.exact_only = self._split is None

    def _plain(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _cached(self, texts: list[str]) -> list[int]:
        pieces = [self._split.split(t) for t in texts]
        missing = list({p for ps in pieces for p in ps[0::2] if p and p not in self._cache})
        if len(self._cache) > 50_000:
            self._cache.clear()
        if missing:
            self._cache.update(zip(missing, self._plain(missing), strict=True))
        return [sum(self._cache[p] for p in ps[0::2] if p) + len(ps) // 2 for ps in pieces]

    def count(self, texts: list[str]) -> list[int]:
        if self.exact_only:
            return self._plain(texts)
        counts = self._cached(texts)
        if self._verified < self.VERIFY_TEXTS:
            self._verified += len(texts)
            if counts != self._plain(texts):
                self.exact_only = True
                return self._plain(texts)
        return counts


class ExampleBuilder:
    """Builds examples and, given a tokenizer, counts prompt tokens and enforces a token budget.

    An example over `max_prompt_tokens` first loses its oldest history steps; if the task alone is
    still too long, it is dropped and counted in `dropped`.
    """

    def __init__(self, cfg: StepConfig, tokenizer=None, max_prompt_tokens: int | None = None):
        self.cfg, self.tokenizer, self.max_prompt_tokens = cfg, tokenizer, max_prompt_tokens
        self.counter = TokenCounter(tokenizer) if tokenizer is not None else None
        self.dropped = 0

    def render(self, ex: StepExample) -> str:
        return self.tokenizer.apply_chat_template(ex.prompt, tools=ex.tools or None, tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, examples: list[StepExample]) -> list[int]:
        return self.counter.count([self.render(ex) for ex in examples])
    def build(self, traj: Trajectory) -> list[StepExample]:
        examples = examples_from_trajectory(traj, self.cfg)
        if self.tokenizer is None:
            return examples
        for ex, n in zip(examples, self.count_tokens(examples), strict=True):
            ex.prompt_tokens = n
        if self.max_prompt_tokens is None:
            return examples
        kept = []
        tool_names = tools_for(traj)
        for ex in examples:
            while ex.prompt_tokens > self.max_prompt_tokens and ex.history_steps > 0:
                shorter = build_prompt(traj, ex.step_index, self.cfg, tool_names, ex.history_steps - 1)
                ex.prompt, ex.history_steps = shorter, ex.history_steps - 1
                ex.prompt_tokens = self.count_tokens([ex])[0]
            if ex.prompt_tokens <= self.max_prompt_tokens:
                kept.append(ex)
            else:
                self.dropped += 1
        return kept
