"""Run a ToolCall in a sandbox with the tool executables installed there (tools/*/bin).

A call becomes the command line the expert data records (`str_replace_editor view /p --view_range
1 20`), so expert actions replay as they are; `bash` calls go through `srl_bash`, which keeps the
shell's working directory from one call to the next as SWE-agent's shell does.
"""

from __future__ import annotations

import json
import shlex
import uuid

from .actions import render_command_line
from .sandbox import Observation, Sandbox
from .sandbox.common import STATE_DIR
from .types import ToolCall

# One argv string may hold at most 128 KiB on Linux; bigger calls travel through a file.
INLINE_LIMIT = 100_000


def command_for(call: ToolCall) -> str:
    if call.name == "bash":
        return "srl_bash " + shlex.quote(str(call.arguments.get("command", "")))
    line = render_command_line(call)
    if call.name == "edit" and "start_line" in call.arguments:  # `edit N:M`, the text on stdin up to end_of_edit
        head, _, body = line.partition("\n")
        return f"{head} <<'end_of_edit'\n{body}"
    return line


def execute(sandbox: Sandbox, call: ToolCall, timeout: float | None = None) -> Observation:
    command = command_for(call)
    if len(command.encode()) > INLINE_LIMIT:
        path = f"{STATE_DIR}/call-{uuid.uuid4().hex[:8]}"
        if call.name == "bash":
            sandbox.write_file(path, str(call.arguments.get("command", "")))
            command = f"srl_bash {shlex.quote('source ' + path)}"
        elif call.name == "str_replace_editor":
            sandbox.write_file(path, json.dumps(call.arguments))
            command = f"str_replace_editor --json-file {path}"
        else:
            return Observation(f"ERROR: the arguments of {call.name} are too long ({len(command.encode())} bytes)", 2)
    return sandbox.run(command, timeout=timeout)
