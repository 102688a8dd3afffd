"""Action text: the policy's answer format and SWE-agent's command-line form of a tool call.

The policy answers with an inner monologue and exactly one tool call, in one of three styles:

    hermes (default)  <think>...</think>                   Qwen2.5(-Coder), Qwen3, the shipped template
                      <tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>
    xml               <think>...</think>                   SWE-agent / SWE-smith's text calls
                      <function=bash><parameter=command>ls</parameter></function>
    llama             <think>...</think>                   Llama 3.1's JSON calls
                      {"name": "bash", "parameters": {"command": "ls"}}

In chat messages a call is written once, by `assistant_message`: a Hermes call is a `tool_calls` entry
whose `arguments` is an object (the chat template encodes it; a JSON string would come out encoded
twice), and the monologue sits in the content, or in `reasoning_content` for templates with a native
reasoning block (Qwen3). XML and Llama calls are part of the content, since Llama 3.1's template drops
the content of a turn with `tool_calls`.

The command-line form (`str_replace_editor view /testbed/x.py --view_range 1 20`) is what SWE-agent
records as `action`; the paper's reward compares actions in that form.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from .errors import FormatViolation
from .tools import coerce_text_argument, load_tools, normalise_call, validate_call
from .types import ToolCall

CallStyle = Literal["hermes", "xml", "llama"]
CALL_STYLES: tuple[str, ...] = ("hermes", "xml", "llama")
Reasoning = Literal["content", "native"]
"""Where the monologue goes in a chat message: `<think>` in the content, or the template's own field."""
# How each style writes a call, for the line that tells a model its answer broke the format.
CALL_FORMATS = {"hermes": '<tool_call>{"name": ..., "arguments": {...}}</tool_call>',
                "xml": "<function=NAME><parameter=ARG>value</parameter></function>",
                "llama": '{"name": ..., "parameters": {...}}'}

_THINK = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)
_TOOL_CALL_OPEN, _TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
_XML_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)</function>", re.DOTALL)
_XML_PARAMETER = re.compile(r"<parameter=([^>\s]+)>(.*?)</parameter>", re.DOTALL)
_BLOCK_EDIT = re.compile(r"edit\s+(\d+):(\d+)\n(.*?)\n?end_of_edit\s*", re.DOTALL)
_JSON_DECODER = json.JSONDecoder()


# --- command-line form ------------------------------------------------------------------------

def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return " ".join(_quote(v) for v in value)
    return str(value) if isinstance(value, int) else shlex.quote(str(value))


def render_command_line(call: ToolCall) -> str:
    """SWE-agent's action string: positional arguments first, the rest as `--name value`."""
    if call.name == "bash":
        return str(call.arguments.get("command", ""))
    if "start_line" in call.arguments:  # the old `edit N:M ... end_of_edit` block
        a = call.arguments
        return f"edit {a['start_line']}:{a['end_line']}\n{a.get('replacement_text', '')}\nend_of_edit"
    spec = load_tools().get(call.name)
    positional = spec.positional if spec else ()
    order = list(spec.properties) if spec else []
    order += [k for k in call.arguments if k not in order]
    parts = [call.name]
    for key in positional:
        if key not in call.arguments:
            break
        parts.append(_quote(call.arguments[key]))
    used = set(positional[: len(parts) - 1])
    parts += [f"--{k} {_quote(call.arguments[k])}" for k in order if k in call.arguments and k not in used]
    return " ".join(parts)


def parse_command_line(action: str) -> ToolCall:
    """Parse a SWE-agent command-line action into a structured call; `raw` keeps the text.

    A first word that names a non-bash tool bundle (standard or legacy) is parsed by that
    tool's signature; anything else is a bash command. Raises FormatViolation on bad quoting.
    """
    text = action.strip()
    if not text:
        raise FormatViolation("empty action")
    first = text.split(maxsplit=1)[0]
    block = _BLOCK_EDIT.fullmatch(text) if first == "edit" else None
    if block:
        try:
            lines = int(block[1]), int(block[2])
        except ValueError as e:  # more digits than Python converts
            raise FormatViolation(f"edit: bad line numbers: {e}") from None
        return ToolCall("edit", {"start_line": lines[0], "end_line": lines[1], "replacement_text": block[3]},
                        raw=action)
    spec = load_tools().get(first)
    if spec is None or first == "bash":
        return normalise_call("bash", {"command": text}, raw=action)
    try:
        tokens = shlex.split(text)[1:]
    except ValueError as e:
        raise FormatViolation(f"cannot split {first} action: {e}") from None
    values: dict[str, list[str]] = {}
    positional = list(spec.positional)
    current: str | None = None
    for tok in tokens:
        if tok.startswith("--") and tok[2:] in spec.properties:
            current = tok[2:]
            values[current] = []
        elif current is not None:
            values[current].append(tok)
        elif positional:
            values[positional.pop(0)] = [tok]
        else:
            raise FormatViolation(f"{first}: unexpected argument {tok!r}")
    args = {k: coerce_text_argument(spec, k, v) for k, v in values.items()}
    return normalise_call(first, args, raw=action)


# --- XML function form (SWE-agent / SWE-smith "xml" style) ---------------------------------------

def _strip_one_newline(value: str) -> str:
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def _xml_arguments(name: str, body: str) -> dict[str, Any]:
    spec = load_tools().get(name)
    return {k: coerce_text_argument(spec, k, [_strip_one_newline(v)]) for k, v in _XML_PARAMETER.findall(body)}


def parse_xml_call(name: str, body: str, raw: str | None = None) -> ToolCall:
    """An expert's XML call, normalised like every imported call (aliases, scaffold-only arguments)."""
    return normalise_call(name, _xml_arguments(name, body), raw=raw)


def find_xml_calls(text: str) -> list[tuple[re.Match[str], ToolCall]]:
    """Every `<function=...>` call in `text`, with its match (for the text around it)."""
    return [(m, parse_xml_call(m[1], m[2], raw=m[0])) for m in _XML_FUNCTION.finditer(text)]


def _xml_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | bool) else str(value)
    # the parser strips one newline at each end (multi-line values sit on their own lines): keep the value's own
    return f"\n{text}\n" if text.startswith("\n") or text.endswith("\n") else text


def render_xml_call(call: ToolCall) -> str:
    params = "".join(f"<parameter={k}>{_xml_value(v)}</parameter>\n" for k, v in call.arguments.items())
    return f"<function={call.name}>\n{params}</function>"


# --- the policy's completion ------------------------------------------------------------------

def render_hermes_call(call: ToolCall) -> str:
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def render_llama_call(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "parameters": call.arguments}, ensure_ascii=False)


_RENDER = {"hermes": render_hermes_call, "xml": render_xml_call, "llama": render_llama_call}


def think_block(thought: str) -> str:
    return f"<think>\n{thought.strip()}\n</think>"


def render_completion(thought: str, call: ToolCall, style: CallStyle = "hermes") -> str:
    """The answer an ideal policy gives: the monologue, then the call in `style`."""
    return f"{think_block(thought)}\n{_RENDER[style](call)}"


def chat_tool_call(call: ToolCall) -> dict[str, Any]:
    """An OpenAI-shaped `tool_calls` entry; `arguments` stays an object for the chat template to encode."""
    return {"type": "function", "function": {"name": call.name, "arguments": dict(call.arguments)}}


def assistant_message(thought: str, call: ToolCall, style: CallStyle = "hermes",
                      reasoning: Reasoning = "content") -> dict[str, Any]:
    """The chat turn of one step: the only place a call becomes a message (prompts' history, the SFT
    target, the agent). The chat template renders it as `render_completion` writes the answer."""
    if style != "hermes":
        return {"role": "assistant", "content": render_completion(thought, call, style)}
    if reasoning == "native":
        return {"role": "assistant", "content": "", "reasoning_content": thought.strip(),
                "tool_calls": [chat_tool_call(call)]}
    return {"role": "assistant", "content": think_block(thought), "tool_calls": [chat_tool_call(call)]}


def wire_messages(messages: list[dict[str, Any]], encode: bool) -> list[dict[str, Any]]:
    """Chat messages as the OpenAI API carries them (`encode`: tool-call arguments as JSON strings) or back
    as chat templates take them (arguments as objects), as vLLM does before rendering."""
    out = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for tc in message["tool_calls"]:
                fn = dict(tc.get("function", tc))
                args = fn.get("arguments") or {}
                if encode and not isinstance(args, str):
                    fn["arguments"] = json.dumps(args, ensure_ascii=False)
                elif not encode and isinstance(args, str):
                    fn["arguments"] = json.loads(args)
                calls.append({**tc, "function": fn} if "function" in tc else fn)
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def assistant_text(message: dict[str, Any]) -> str:
    """A chat assistant message as answer text: any reasoning a server split off (`reasoning_content`) as a
    <think> block, its content, and any tool calls a server or trainer parsed out of it in the Hermes form."""
    text = message.get("content") or ""
    if isinstance(message.get("reasoning_content"), str):
        text = f"{think_block(message['reasoning_content'])}\n{text.lstrip()}"
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function", tc)
        args = fn.get("arguments") or {}
        text += "\n" + render_hermes_call(ToolCall(fn.get("name", ""), json.loads(args) if isinstance(args, str)
                                                   else args))
    return text


def format_help(style: CallStyle) -> str:
    """What a well-formed answer looks like in `style`."""
    return f"your reasoning inside <think>...</think>, then exactly one tool call: {CALL_FORMATS[style]}"


@dataclass(frozen=True)
class ParsedCompletion:
    thought: str
    call: ToolCall


def parse_completion(text: str, style: CallStyle = "hermes",
                     allowed_tools: set[str] | None = None) -> ParsedCompletion:
    """Check the format and extract the one tool call; raise FormatViolation on any breach."""
    m = _THINK.fullmatch(text)
    if not m:
        raise FormatViolation("the answer must start with a <think>...</think> block")
    thought, rest = m[1].strip(), m[2]
    if style == "hermes":
        call = _parse_hermes_call(rest)
    elif style == "llama":
        call = _parse_llama_call(rest)
    else:
        found = find_xml_calls(rest)
        opened = rest.count("<function=")
        if opened != 1 or len(found) != 1:
            raise FormatViolation(f"expected exactly one <function=...>...</function>, found {opened}")
        _reject_text_outside(_XML_FUNCTION.sub("", rest))
        match = found[0][0]  # the policy's call as written: aliases and unknown arguments are violations
        call = ToolCall(match[1], _xml_arguments(match[1], match[2]))
    validate_call(call, allowed_tools)
    return ParsedCompletion(thought, call)


def _reject_text_outside(text: str) -> None:
    """Only whitespace may stand beside the call. Think tags are looked for here, outside it, since a call's
    arguments may hold them (a grep for `</think>`)."""
    if "<think>" in text or "</think>" in text:
        raise FormatViolation("more than one <think> block")
    if text.strip():
        raise FormatViolation("text outside the <think> block and the tool call")


def _decode_json(text: str, problem: str) -> tuple[Any, int]:
    """The JSON value at the start of `text` and where it ends; FormatViolation (`problem`: why) for anything json
    rejects, nesting deeper than the stack and integers longer than Python converts included."""
    try:
        return _JSON_DECODER.raw_decode(text)
    except json.JSONDecodeError as e:
        raise FormatViolation(f"{problem}: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        raise FormatViolation(f"{problem}: {e}") from None



def _parse_hermes_call(rest: str) -> ToolCall:
    # The JSON is decoded where it starts, not cut at the first </tool_call>: an argument may hold that text
    # (json.dumps does not escape it), as an edit of this very parser would.
    before, opened, after = rest.partition(_TOOL_CALL_OPEN)
    if not opened:
        raise FormatViolation(f"expected exactly one {_TOOL_CALL_OPEN}...{_TOOL_CALL_CLOSE}, found none")
    _reject_text_outside(before)
    body = after.lstrip()
    obj, end = _decode_json(body, "tool call is not valid JSON")
    tail = body[end:].lstrip()
    if not tail.startswith(_TOOL_CALL_CLOSE):
        raise FormatViolation(f"the tool call's JSON is not followed by {_TOOL_CALL_CLOSE}")
    tail = tail[len(_TOOL_CALL_CLOSE):]
    if _TOOL_CALL_OPEN in tail:
        raise FormatViolation(f"expected exactly one {_TOOL_CALL_OPEN}...{_TOOL_CALL_CLOSE}, found more")
    _reject_text_outside(tail)
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise FormatViolation("tool call JSON needs a string 'name'")
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models double-encode, as the OpenAI API does
        encoded = args.strip()
        args, end = _decode_json(encoded, "tool call arguments are not valid JSON")
        if encoded[end:]:
            raise FormatViolation("tool call arguments are not valid JSON: Extra data")
    if not isinstance(args, dict):
        raise FormatViolation("tool call 'arguments' must be a JSON object")
    return ToolCall(obj["name"], args)


def _parse_llama_call(rest: str) -> ToolCall:
    text = rest.strip()
    if text.startswith(("<think>", "</think>")):
        raise FormatViolation("more than one <think> block")
    obj, end = _decode_json(text, 'expected one JSON call {"name": ..., "parameters": {...}}')
    _reject_text_outside(text[end:])
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise FormatViolation("tool call JSON needs a string 'name'")
    args = obj.get("parameters", obj.get("arguments", {}))
    if not isinstance(args, dict):
        raise FormatViolation("tool call 'parameters' must be a JSON object")
    return ToolCall(obj["name"], args)
