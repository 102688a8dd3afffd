"""Replay an expert trajectory's tool calls in a sandbox, comparing recorded and actual observations.

For each step: the thought, the action, the recorded and the actual observation with their
similarity (difflib ratio after normalising scaffold decorations) and a diff; the first step whose
similarity falls below the threshold is the first divergence. At the end the sandbox's diff is
compared with the trajectory's recorded patch (file by file, hunk by hunk).
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .jsonio import atomic_writer
from .run_call import command_for, execute
from .sandbox import Observation, Sandbox
from .types import ToolCall, Trajectory

# SWE-agent appends the shell state to observations; mini-swe-agent wraps them in tags.
_DECORATIONS = [
    re.compile(r"\n?\(Open file: [^\n]*\)\n\(Current directory: [^\n]*\)\n?(bash-\$)?\s*$"),
    re.compile(r"^OBSERVATION:\n"),
    re.compile(r"^<returncode>-?\d+</returncode>\n<output>\n?"),
    re.compile(r"\n?</output>\s*$"),
]
DEFAULT_THRESHOLD = 0.9


def normalise_observation(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for pattern in _DECORATIONS:
        text = pattern.sub("", text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def observation_similarity(recorded: str, actual: str) -> float:
    a, b = normalise_observation(recorded), normalise_observation(actual)
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _patch_files(patch: str) -> dict[str, list[tuple]] | None:
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        # lstrip only: trailing context lines are a single space, and stripping would cut them
        text = patch.replace("\r\n", "\n").lstrip()
        parsed = PatchSet(text if text.endswith("\n") else text + "\n")
    except UnidiffParseError:
        return None
    return {f.path: [(h.source_start, h.source_length, h.target_start, h.target_length,
                      tuple((line.line_type, line.value.rstrip()) for line in h)) for h in f]
            for f in parsed}


def patches_match(actual: str, recorded: str) -> bool:
    """Same files and hunks (index lines, CRLF and trailing whitespace aside)."""
    a, b = _patch_files(actual), _patch_files(recorded)
    if a is None or b is None:
        return normalise_observation(actual) == normalise_observation(recorded)
    return a == b


@dataclass
class StepResult:
    index: int
    thought: str
    action: ToolCall
    command: str
    recorded: str
    actual: Observation
    similarity: float
    diverged: bool = False


@dataclass
class ReplayResult:
    trajectory: Trajectory
    steps: list[StepResult] = field(default_factory=list)
    first_divergence: int | None = None
    final_patch: str = ""
    patch_matches: bool | None = None  # None: the trajectory recorded no patch

    @property
    def ok(self) -> bool:
        if self.patch_matches is None:
            return self.first_divergence is None
        return self.patch_matches


def replay(traj: Trajectory, sandbox: Sandbox, *, last_step: int | None = None, timeout: float = 120,
           threshold: float = DEFAULT_THRESHOLD, on_step: Callable[[StepResult], None] | None = None) -> ReplayResult:
    """Run the expert's calls in order (up to 1-based `last_step`) and compare what comes back."""
    result = ReplayResult(traj)
    steps = traj.steps[:last_step] if last_step else traj.steps
    for i, step in enumerate(steps):
        actual = execute(sandbox, step.action, timeout=timeout)
        sim = observation_similarity(step.observation, actual.output)
        item = StepResult(i, step.thought, step.action, command_for(step.action), step.observation, actual, sim)
        if sim < threshold and result.first_divergence is None:
            item.diverged = True
            result.first_divergence = i
        result.steps.append(item)
        if on_step:
            on_step(item)
    result.final_patch = sandbox.diff()
    if traj.patch and traj.patch.strip():
        result.patch_matches = patches_match(result.final_patch, traj.patch)
    return result


def observation_diff(recorded: str, actual: str, max_lines: int = 60) -> list[str]:
    lines = list(difflib.unified_diff(normalise_observation(recorded).split("\n"),
                                      normalise_observation(actual).split("\n"), "recorded", "actual", lineterm=""))
    return lines if len(lines) <= max_lines else [*lines[:max_lines], f"... ({len(lines) - max_lines} more lines)"]


# --- HTML report --------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{font-size:1.4rem} .step{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.step.diverged{border:2px solid #c0392b} .badge{font-weight:600;padding:.1rem .5rem;border-radius:4px}
.ok{background:#d5f5e3} .warn{background:#fdebd0} .bad{background:#fadbd8}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;white-space:pre-wrap;font-size:.85rem}
.add{color:#1e8449} .del{color:#c0392b} .thought{color:#555;font-style:italic} summary{cursor:pointer}
"""


def _diff_html(lines: list[str]) -> str:
    out = []
    for line in lines:
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        out.append(f'<span class="{cls}">{html.escape(line)}</span>' if cls else html.escape(line))
    return "\n".join(out)


def write_html(result: ReplayResult, path: str, threshold: float = DEFAULT_THRESHOLD) -> None:
    traj = result.trajectory
    parts = [f"<!doctype html><meta charset=utf-8><title>replay {html.escape(traj.id)}</title>",
             f"<style>{_CSS}</style><h1>Replay of {html.escape(traj.id)}</h1>",
             f"<p>{len(result.steps)} of {len(traj.steps)} steps replayed; "
             + (f"first divergence at step {result.first_divergence + 1}" if result.first_divergence is not None
                else "no divergence") + f" (similarity threshold {threshold}).</p>",
             f"<details><summary>Problem statement</summary><pre>{html.escape(traj.problem_statement)}</pre></details>"]
    for s in result.steps:
        level = "ok" if s.similarity >= 0.999 else "warn" if s.similarity >= threshold else "bad"
        mark = ' <span class="badge bad">first divergence</span>' if s.diverged else ""
        timed_out = " (timed out)" if s.actual.timed_out else ""
        diff = ""
        if s.similarity < 0.999:
            diff = (f"<details open><summary>recorded vs actual</summary>"
                    f"<pre>{_diff_html(observation_diff(s.recorded, s.actual.output))}</pre></details>")
        parts.append(
            f'<div class="step{" diverged" if s.diverged else ""}">'
            f"<h3>Step {s.index + 1}: {html.escape(s.action.name)} "
            f'<span class="badge {level}">similarity {s.similarity:.3f}</span>{mark}</h3>'
            f'<p class="thought">{html.escape(s.thought)}</p><pre>{html.escape(s.command)}</pre>'
            f"<p>exit code {s.actual.exit_code}{timed_out}, {s.actual.duration:.2f} s</p>{diff}"
            f"<details><summary>actual observation</summary><pre>{html.escape(s.actual.output)}</pre></details></div>")
    verdict = {True: ("ok", "matches the recorded patch"), False: ("bad", "differs from the recorded patch"),
               None: ("warn", "the trajectory recorded no patch")}[result.patch_matches]
    parts.append(f'<h2>Final diff <span class="badge {verdict[0]}">{verdict[1]}</span></h2>'
                 f"<pre>{_diff_html(result.final_patch.splitlines())}</pre>")
    if result.patch_matches is False:
        parts.append(f"<h2>Recorded patch</h2><pre>{_diff_html((traj.patch or '').splitlines())}</pre>")
    with atomic_writer(path) as f:
        f.write("\n".join(parts))
