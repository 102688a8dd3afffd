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

The agent builds its prompts with the same `build_prompt`, and a checkpoint records its `StepConfig`
beside the weights (`rendering.json`), so a model is evaluated on the context shape it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import CALL_STYLES, CallStyle, Reasoning, assistant_message
from .chat import SYSTEM_PROMPT, render_prompt
from .errors import UserError
from .jsonio import atomic_writer, read_json
from .tools import STANDARD_TOOLS, load_tools, tool_schemas
from .types import StepExample, Trajectory

XML_FORMAT = (
    "\n\nWrite the call as <function=NAME><parameter=ARG>value</parameter></function>. "
    "The tools and their JSON-schema arguments:\n"
)


RENDERING_FILE = "rendering.json"


@dataclass
class StepConfig:
    """How trajectories are cut into examples and written as chat: a checkpoint's rendering record."""

    history: int | None = 2
    """Previous steps in the prompt; None keeps them all (`--history full`)."""
    max_observation_chars: int = 4000
    """Observations longer than this are cut in the middle (see the module docstring)."""
    max_problem_chars: int = 12000
    """The problem statement is cut the same way beyond this."""
    call_style: CallStyle = "hermes"
    """How tool calls are written: `hermes` (<tool_call> JSON), `xml` (<function=...>) or `llama`."""
    reasoning: Reasoning = "content"
    """Where a history turn's monologue goes: `content` (<think>) or `native` (the template's
    `reasoning_content`, Qwen3)."""
    system_prompt: str = SYSTEM_PROMPT
    """The system turn's text (the call format and, for `xml`, the tool schemas follow it)."""
    tools: list[str] = field(default_factory=lambda: list(STANDARD_TOOLS))
    """Tools every prompt offers; a trajectory's prompts add the legacy tools its expert used."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = RENDERING_FILE) -> StepConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - known or data.get("call_style", "hermes") not in CALL_STYLES:
            raise UserError(f"{source}: not a rendering record (fields: {', '.join(sorted(known))})")
        return cls(**data)


def rendering_file(where: str | Path) -> Path:
    """Where the rendering record of a checkpoint folder (`rendering.json` in it) or of a steps file that
    `data build` wrote (`steps.jsonl` -> `steps.rendering.json` beside it) lives."""
    where = Path(where)
    return where.with_suffix(".rendering.json") if where.suffix == ".jsonl" else where / RENDERING_FILE


def save_rendering(cfg: StepConfig, where: str | Path) -> None:
    """Write the rendering record of a checkpoint folder or a steps file (see `rendering_file`)."""
    with atomic_writer(rendering_file(where)) as f:
        json.dump(cfg.to_dict(), f, indent=2, ensure_ascii=False)


def load_rendering(where: str | Path) -> StepConfig | None:
    """The rendering record of a checkpoint folder or a steps file; None when it has none (made before
    the record existed)."""
    path = rendering_file(where)
    if not path.is_file():
        return None
    return StepConfig.from_dict(read_json(path), str(path))


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


def tools_for(traj: Trajectory, cfg: StepConfig | None = None) -> list[str]:
    """The offered tools (`cfg.tools`), plus any legacy tool the expert used (in order of first use)."""
    names = list(cfg.tools if cfg else STANDARD_TOOLS)
    specs = load_tools()
    for step in traj.steps:
        name = step.action.name
        if name not in names and name in specs:
            names.append(name)
    return names


def prompt_tools(tool_names: list[str], cfg: StepConfig) -> list[dict[str, Any]]:
    """The schemas handed to the chat template; none for `xml`, whose system turn lists them itself."""
    return tool_schemas(tool_names) if cfg.call_style != "xml" else []


def _system_turn(tool_names: list[str], cfg: StepConfig) -> dict[str, Any]:
    if cfg.call_style != "xml":
        return {"role": "system", "content": cfg.system_prompt}
    schemas = "\n".join(json.dumps(s["function"], ensure_ascii=False) for s in tool_schemas(tool_names))
    return {"role": "system", "content": cfg.system_prompt + XML_FORMAT + schemas}


_OMITTED = re.compile(r"\n\n\((\d+) earlier steps? not shown\.\)$")


def _task_turn(problem: str, omitted: int) -> dict[str, Any]:
    text = f"Resolve this issue in the repository:\n\n<issue>\n{problem}\n</issue>"
    if omitted:
        text += f"\n\n({omitted} earlier step{'s' if omitted > 1 else ''} not shown.)"
    return {"role": "user", "content": text}


def steps_taken(messages: list[dict[str, Any]]) -> int:
    """How many steps came before this prompt: those left out of the window plus the assistant turns shown."""
    task = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    omitted = _OMITTED.search(task)
    return (int(omitted[1]) if omitted else 0) + sum(m.get("role") == "assistant" for m in messages)


def build_prompt(traj: Trajectory, k: int, cfg: StepConfig, tool_names: list[str],
                 history: int | None = None) -> list[dict[str, Any]]:
    """The chat messages before step k, with `history` previous steps (default: cfg.history)."""
    keep = cfg.history if history is None else history
    start = 0 if keep is None else max(0, k - keep)
    problem = truncate_middle(traj.problem_statement, cfg.max_problem_chars)
    messages = [_system_turn(tool_names, cfg), _task_turn(problem, start)]
    for step in traj.steps[start:k]:
        messages.append(assistant_message(step.thought, step.action, cfg.call_style, cfg.reasoning))
        messages.append({"role": "tool", "content": truncate_middle(step.observation, cfg.max_observation_chars)})
    return messages


def examples_from_trajectory(traj: Trajectory, cfg: StepConfig) -> list[StepExample]:
    """One example per step (without token counts; see ExampleBuilder)."""
    tool_names = tools_for(traj, cfg)
    schemas = prompt_tools(tool_names, cfg)
    n = len(traj.steps)
    out = []
    for k, step in enumerate(traj.steps):
        prompt = build_prompt(traj, k, cfg, tool_names)
        out.append(StepExample(traj.id, k, n, prompt, schemas, step.action.to_json(),
                               history_steps=(len(prompt) - 2) // 2, expert_thought=step.thought,
                               tool_names=tool_names))
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
        return render_prompt(self.tokenizer, ex.prompt, ex.tools)

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
        tool_names = tools_for(traj, self.cfg)
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
