"""The canonical data types: every importer produces these, everything downstream consumes them.

They are plain dataclasses with a lossless JSON round trip (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One action: a tool name and its JSON arguments.

    `name` is the normalised tool name (`execute_bash` becomes `bash`, `finish` becomes `submit`).
    `original` holds the scaffold's own name and arguments when normalisation changed them, and
    `raw` the action exactly as the scaffold wrote it when it came as text (a command line, an
    XML call, a fenced block), so nothing of the source is lost.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    original: dict[str, Any] | None = None
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.original is not None:
            d["original"] = self.original
        if self.raw is not None:
            d["raw"] = self.raw
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCall:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ValueError(f"a tool call needs a string 'name', got {str(d)[:80]!r}")
        args = d.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args)
        if not isinstance(args, dict):
            raise ValueError(f"tool call arguments must be an object, got {type(args).__name__}")
        return cls(d["name"], args, d.get("original"), d.get("raw"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass
class Step:
    """One expert decision: the monologue, the tool call, and what the environment answered."""

    thought: str
    action: ToolCall
    observation: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"thought": self.thought, "action": self.action.to_dict(),
                "observation": self.observation, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(d.get("thought", ""), ToolCall.from_dict(d["action"]), d.get("observation", ""),
                   d.get("metadata", {}))


@dataclass
class Trajectory:
    """An expert run on one task, in the canonical form."""

    id: str
    problem_statement: str
    steps: list[Step]
    patch: str | None = None
    resolved: bool | None = None
    source_format: str = "canonical"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "problem_statement": self.problem_statement,
                "steps": [s.to_dict() for s in self.steps], "patch": self.patch,
                "resolved": self.resolved, "source_format": self.source_format,
                "metadata": self.metadata}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        return cls(str(d["id"]), d.get("problem_statement", ""), [Step.from_dict(s) for s in d["steps"]],
                   d.get("patch"), d.get("resolved"), d.get("source_format", "canonical"),
                   d.get("metadata", {}))


@dataclass
class StepExample:
    """One SRL training instance: the chat prompt before expert step `step_index`, and that step's call.

    `prompt` is a list of chat messages (TRL's conversational `prompt` column); assistant tool
    calls in it carry their arguments as objects, which chat templates encode (once).
    `expert_action` is the expert's ToolCall serialised as JSON, so the column has one type
    whatever the tool, which Arrow-backed datasets need.
    """

    trajectory_id: str
    step_index: int
    num_steps: int
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    expert_action: str
    prompt_tokens: int | None = None
    history_steps: int = 0
    expert_thought: str = ""
    """The expert's monologue at this step: the SFT baseline imitates it; the SRL reward ignores it."""
    tool_names: list[str] = field(default_factory=list)
    """The tools the prompt offers (the reward accepts exactly these); empty in rows from before it existed."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepExample:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def expert(self) -> ToolCall:
        return ToolCall.from_dict(json.loads(self.expert_action))
