"""Tool schemas: loaded from the `tools/` bundles, they drive prompts, parsing and validation.

Each bundle is `tools/<name>/schema.json` with `name`, `description`, JSON-schema `parameters` and
`positional` (the arguments written positionally in SWE-agent's command-line form). Bundles under
`tools/legacy/` are SWE-agent's older windowed tools (`open`, `edit`, ...): importers recognise
them, but prompts only offer them for trajectories that used them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .errors import FormatViolation
from .paths import project_dir
from .types import ToolCall

# Scaffold-specific names of the same tools, and the arguments those scaffolds add that ours lack.
TOOL_ALIASES = {
    "execute_bash": "bash",
    "run_bash": "bash",
    "finish": "submit",
    "str_replace_based_edit_tool": "str_replace_editor",
}
STANDARD_TOOLS = ("bash", "str_replace_editor", "submit")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    positional: tuple[str, ...] = ()
    legacy: bool = False
    properties: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    def openai_schema(self) -> dict[str, Any]:
        """The OpenAI / chat-template function schema the policy sees."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


def _load_spec(path: Path, legacy: bool) -> ToolSpec:
    d = json.loads(path.read_text(encoding="utf-8"))
    params = d["parameters"]
    return ToolSpec(d["name"], d["description"], params, tuple(d.get("positional", [])), legacy,
                    params.get("properties", {}))


@cache
def load_tools(root: str | None = None) -> dict[str, ToolSpec]:
    """All tool bundles by name (standard first, then legacy)."""
    base = Path(root) if root else project_dir("tools")
    specs = {}
    for path in sorted(base.glob("*/schema.json")):
        spec = _load_spec(path, legacy=False)
        specs[spec.name] = spec
    for path in sorted(base.glob("legacy/*/schema.json")):
        spec = _load_spec(path, legacy=True)
        specs.setdefault(spec.name, spec)
    missing = [n for n in STANDARD_TOOLS if n not in specs]
    if missing:
        raise FileNotFoundError(f"tool bundles {missing} not found under {base}")
    return specs


def tool_schemas(names: list[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI-style schemas for `names` (default: the standard tools), in a stable order."""
    specs = load_tools()
    names = list(STANDARD_TOOLS) if names is None else names
    return [specs[n].openai_schema() for n in names]


def normalise_call(name: str, arguments: dict[str, Any], raw: str | None = None) -> ToolCall:
    """Map a scaffold's tool name to ours, dropping arguments our schema lacks; keep the original."""
    canonical = TOOL_ALIASES.get(name, name)
    spec = load_tools().get(canonical)
    kept = arguments
    if canonical != name and spec is not None:
        kept = {k: v for k, v in arguments.items() if k in spec.properties}
    original = {"name": name, "arguments": arguments} if (canonical != name or kept != arguments) else None
    return ToolCall(canonical, kept, original, raw)


_JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "number": (int, float),
               "object": dict}


def validate_call(call: ToolCall, allowed: set[str] | None = None) -> None:
    """Raise FormatViolation unless `call` names a known tool with well-typed, complete arguments."""
    specs = load_tools()
    allowed = set(STANDARD_TOOLS) if allowed is None else allowed
    spec = specs.get(call.name)
    if spec is None or call.name not in allowed:
        raise FormatViolation(f"unknown tool {call.name!r}; expected one of {sorted(allowed)}")
    for key in spec.required:
        if key not in call.arguments:
            raise FormatViolation(f"tool {call.name!r} is missing required argument {key!r}")
    for key, value in call.arguments.items():
        prop = spec.properties.get(key)
        if prop is None:
            raise FormatViolation(f"tool {call.name!r} has no argument {key!r}")
        expected = _JSON_TYPES.get(prop.get("type", ""), object)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise FormatViolation(f"argument {key!r} of {call.name!r} must be {prop.get('type')}")
        if "enum" in prop and value not in prop["enum"]:
            raise FormatViolation(f"argument {key!r} of {call.name!r} must be one of {prop['enum']}")


def coerce_text_argument(spec: ToolSpec | None, key: str, values: list[str]) -> Any:
    """Turn text-form argument values (command line, XML) into the schema's JSON type."""
    prop = (spec.properties.get(key) if spec else None) or {}
    kind = prop.get("type", "string")
    try:
        if kind == "array":
            if len(values) == 1 and values[0].strip().startswith("["):
                return json.loads(values[0])
            items = [v for chunk in values for v in chunk.replace(",", " ").split()]
            return [int(v) for v in items] if prop.get("items", {}).get("type") == "integer" else items
        if len(values) != 1:
            raise ValueError(f"expected one value, got {len(values)}")
        value = values[0]
        if kind == "integer":
            return int(value)
        if kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{value!r} is not a boolean")
            return value.lower() == "true"
        return value
    except (ValueError, RecursionError) as e:  # RecursionError: a JSON array nested deeper than the stack
        raise FormatViolation(f"argument {key!r}: {e}") from None
