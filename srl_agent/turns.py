"""One agent turn, written once: the engine of eval's agent loop (agent.py) and of RLVR's episodes (rlvr/episodes.py).

    episode = AgentEpisode(transcript, sandbox, call_style, tools, limits)
    while (prompt := episode.next_prompt()) is not None:    # None once a limit ended it
        call = episode.answer(policy(prompt))               # parsed; a broken answer is told what was wrong
        if call is not None:
            episode.observe(run_call(sandbox, call))        # the call in the sandbox -> the next turn's context
    episode.status                                          # how it ended: a Status

An episode is stepped from outside, one method per stage of a turn, so a driver decides what waits for what:
`play` plays one episode to its end (the agent loop); rlvr/episodes.py plays many on their own threads, whose
prompts a Batcher (policy/batcher.py) sends to the policy together.

What an episode remembers and how it prompts is its Transcript: chat messages rebuilt each turn the way
training's examples are (the agent, and RLVR's `step` context, which tokenises them), or the exact token ids
sampled, with the template's glue and the observations between them (RLVR's `episode` context). Everything else
is here: parsing, the format help, the observation's cut and timeout note, the limits and the status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from .actions import ParsedCompletion, format_help, parse_completion
from .errors import FormatViolation
from .policy import Completion, ContextWindowExceeded
from .run_call import execute
from .sandbox import Observation, Sandbox
from .steps import truncate_middle
from .types import ToolCall

FORMAT_HELP = "Your answer broke the required format: {error}. Answer with {how}."


class Status(StrEnum):
    """How an episode ended. The agent loop's end in submitted, step_limit, format_errors, context_limit,
    time_limit or disk_limit; RLVR's in submitted, turn_limit, format_errors, token_limit, disk_limit or
    sandbox_error (metrics.STATUSES)."""

    SUBMITTED = "submitted"
    """The policy called `submit` (the call ran; its patch is the sandbox's diff)."""
    STEP_LIMIT = "step_limit"
    """`TurnLimits.max_calls` tool calls ran."""
    TURN_LIMIT = "turn_limit"
    """`TurnLimits.max_answers` answers, broken ones included, were given."""
    FORMAT_ERRORS = "format_errors"
    """One broken answer more than `TurnLimits.max_format_errors`."""
    CONTEXT_LIMIT = "context_limit"
    """The next prompt does not fit the model's context (or a served model refused it)."""
    TOKEN_LIMIT = "token_limit"
    """The next answer might not fit the episode's token budget (RLVR's sequences are never cut)."""
    TIME_LIMIT = "time_limit"
    """`TurnLimits.time_limit` seconds passed."""
    DISK_LIMIT = "disk_limit"
    """The sandbox wrote past its disk budget (`Observation.disk_exceeded`)."""
    SANDBOX_ERROR = "sandbox_error"
    """The sandbox failed to run a call (it died or its engine erred): nothing more can run in it."""


@dataclass
class TurnLimits:
    """When an episode stops, and how its observations are kept."""

    max_calls: int | None = None
    """Tool calls run before `step_limit` (the agent's max_steps); None: no limit."""
    max_answers: int | None = None
    """Answers, broken ones included, before `turn_limit` (RLVR's max_turns); None: no limit."""
    max_format_errors: int = 3
    """Broken answers told the format help; one more ends the episode with `format_errors`."""
    time_limit: float | None = None
    """Seconds from the episode's start after which no answer is asked for (`time_limit`); None: no limit."""
    step_timeout: float = 120.0
    """Seconds one tool call may run; the observation of a call killed then says so."""
    max_observation_chars: int = 10_000
    """Characters of a tool's output kept (cut in the middle)."""


class Transcript(Protocol):
    """What an episode remembers and how it prompts: chat messages (agent.py) or exact token ids (RLVR)."""

    def prompt(self) -> Any:
        """The policy's next prompt."""

    def over_budget(self, prompt: Any) -> Status | None:
        """The status that ends the episode rather than ask with `prompt` (context_limit, token_limit), else None."""

    def add_answer(self, completion: Completion) -> None:
        """Keep an answer as sampled (every answer, broken or not, before it is parsed)."""

    def add_format_help(self, completion: Completion, help_text: str) -> None:
        """The broken answer was told `help_text`; the next prompt shows both."""

    def add_observation(self, parsed: ParsedCompletion, completion: Completion, output: str,
                        observation: Observation, ended: bool) -> None:
        """The call ran and printed `output` (already cut); `ended`: no turn follows (submit, disk limit)."""


def observation_text(observation: Observation, max_chars: int, step_timeout: float) -> str:
    """What a tool call's output becomes in the run: cut in the middle, and a note if the call was killed."""
    output = truncate_middle(observation.output, max_chars)
    if observation.timed_out:
        output += f"\n[the command was killed after {step_timeout:g} seconds]"
    return output


class AgentEpisode:
    """One agent run in one sandbox, stepped turn by turn (the module's loop). Not thread-safe: one driver at a time."""

    def __init__(self, transcript: Transcript, sandbox: Sandbox, call_style: str, tools: list[str],
                 limits: TurnLimits):
        self.transcript, self.sandbox, self.call_style, self.limits = transcript, sandbox, call_style, limits
        self.tool_names = set(tools)
        self.status: Status | None = None
        self.detail = ""
        """When a sandbox failure ended it (`sandbox_error`)."""
        self.fault = ""
        """Why the sandbox failed, on one line (`sandbox_error`)."""
        self.answers = self.calls = self.format_errors = 0
        self.started = time.monotonic()
        self._answered: tuple[ParsedCompletion, Completion] | None = None  # the answer whose call runs now

    def end(self, status: Status, detail: str = "") -> None:
        self.status, self.detail = status, detail

    def next_prompt(self) -> Any | None:
        """The prompt of the next answer; None when the episode has ended (now, if a limit is reached)."""
        limits = self.limits
        if self.status is not None:
            return None
        if limits.max_calls is not None and self.calls >= limits.max_calls:
            self.end(Status.STEP_LIMIT)
        elif limits.max_answers is not None and self.answers >= limits.max_answers:
            self.end(Status.TURN_LIMIT)
        elif limits.time_limit is not None and time.monotonic() - self.started > limits.time_limit:
            self.end(Status.TIME_LIMIT)
        else:
            prompt = self.transcript.prompt()
            over = self.transcript.over_budget(prompt)
            if over is None:
                return prompt
            self.end(over)
        return None

    def answer(self, completion: Completion) -> ToolCall | None:
        """Take the policy's answer to the last prompt: the tool call to run, or None (a broken answer)."""
        self.answers += 1
        self.transcript.add_answer(completion)
        try:
            parsed = parse_completion(completion.text, self.call_style, self.tool_names)
        except FormatViolation as e:
            self.format_errors += 1
            if self.format_errors > self.limits.max_format_errors:
                self.end(Status.FORMAT_ERRORS)
            else:
                self.transcript.add_format_help(completion, FORMAT_HELP.format(error=e, how=format_help(
                    self.call_style)))
            return None
        self._answered = parsed, completion
        return parsed.call

    def observe(self, result: Observation | str) -> None:
        """What the call `answer` returned did: its Observation, or why the sandbox could not run it."""
        if self._answered is None:
            raise RuntimeError("observe() follows an answer() that returned a call")
        (parsed, completion), self._answered = self._answered, None
        if isinstance(result, str):  # nothing more can run in this sandbox, not even the tests
            self.fault = result
            self.end(Status.SANDBOX_ERROR, f"the sandbox failed at turn {self.answers}")
            return
        self.calls += 1
        ending = Status.DISK_LIMIT if result.disk_exceeded else Status.SUBMITTED if parsed.call.name == "submit" \
            else None
        output = observation_text(result, self.limits.max_observation_chars, self.limits.step_timeout)
        self.transcript.add_observation(parsed, completion, output, result, ended=ending is not None)
        if ending is not None:
            self.end(ending)


RunCall = Callable[[Sandbox, ToolCall, float], "Observation | str"]
"""Runs a call in a sandbox with a timeout: its Observation, or why the sandbox failed (a driver that raises
instead stops the whole run on a sandbox failure)."""


def run_in_sandbox(sandbox: Sandbox, call: ToolCall, timeout: float) -> Observation:
    return execute(sandbox, call, timeout=timeout)


def play(episode: AgentEpisode, generate: Callable[[Any], Completion],
         run_call: RunCall = run_in_sandbox) -> Status | None:
    """Play `episode` to its end: each prompt to `generate`, each call to `run_call` in the episode's sandbox.

    A prompt the policy refuses as too long for its context (ContextWindowExceeded) ends it with `context_limit`."""
    while (prompt := episode.next_prompt()) is not None:
        try:
            completion = generate(prompt)
        except ContextWindowExceeded:
            episode.end(Status.CONTEXT_LIMIT)
            break
        call = episode.answer(completion)
        if call is not None:
            episode.observe(run_call(episode.sandbox, call, episode.limits.step_timeout))
    return episode.status
