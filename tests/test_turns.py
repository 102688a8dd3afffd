"""The turn engine stepped by hand: each limit ends an episode with its status, broken answers get the format help,
a disk over budget or a failed sandbox ends it after the call. No sandbox needed: the driver hands `observe` what
the call did."""

from __future__ import annotations

import time

import pytest

from srl_agent.actions import render_completion
from srl_agent.policy import Completion
from srl_agent.sandbox import Observation
from srl_agent.turns import AgentEpisode, Status, TurnLimits
from srl_agent.types import ToolCall

LS = Completion(render_completion("Look.", ToolCall("bash", {"command": "ls"})), [])
SUBMIT = Completion(render_completion("Done.", ToolCall("submit", {})), [])
BROKEN = Completion("no think block", [])


class Notes:
    """A transcript that writes down what it is told; its prompt is the count of notes."""

    def __init__(self, budget: int = 100):
        self.notes: list[tuple] = []
        self.budget = budget

    def prompt(self):
        return len(self.notes)

    def over_budget(self, prompt):
        return Status.TOKEN_LIMIT if prompt >= self.budget else None

    def add_answer(self, completion):
        self.notes.append(("answer", completion.text[:6]))

    def add_format_help(self, completion, help_text):
        self.notes.append(("help", help_text.split(":")[0]))

    def add_observation(self, parsed, completion, output, observation, ended):
        self.notes.append(("observation", parsed.call.name, output, ended))


def episode(limits: TurnLimits, budget: int = 100) -> AgentEpisode:
    return AgentEpisode(Notes(budget), None, "hermes", ["bash", "submit"], limits)


def test_each_limit_ends_the_episode_with_its_status():
    calls = episode(TurnLimits(max_calls=1))
    assert calls.next_prompt() == 0 and calls.answer(LS) == ToolCall("bash", {"command": "ls"})
    calls.observe(Observation("a.py", 0))
    assert calls.next_prompt() is None and calls.status == Status.STEP_LIMIT

    answers = episode(TurnLimits(max_answers=2, max_format_errors=5))
    for _ in range(2):
        assert answers.next_prompt() is not None and answers.answer(BROKEN) is None
    assert answers.next_prompt() is None and (answers.status, answers.format_errors) == (Status.TURN_LIMIT, 2)
    assert answers.transcript.notes[1] == ("help", "Your answer broke the required format")

    broken = episode(TurnLimits(max_format_errors=1))
    broken.answer(BROKEN)
    broken.answer(BROKEN)
    assert broken.status == Status.FORMAT_ERRORS and [n[0] for n in broken.transcript.notes] == ["answer", "help",
                                                                                                   "answer"]
    slow = episode(TurnLimits(time_limit=0.01))
    time.sleep(0.02)
    assert slow.next_prompt() is None and slow.status == Status.TIME_LIMIT
    full = episode(TurnLimits(), budget=0)
    assert full.next_prompt() is None and full.status == Status.TOKEN_LIMIT


def test_the_call_s_outcome_ends_it_or_goes_on():
    run = episode(TurnLimits(step_timeout=2, max_observation_chars=100))
    run.answer(LS)
    run.observe(Observation("x" * 300, None, timed_out=True))
    (_, _, output, ended) = run.transcript.notes[-1]
    assert run.status is None and not ended and output.endswith("[the command was killed after 2 seconds]")
    assert len(output) < 200  # cut in the middle
    run.answer(LS)
    run.observe(Observation("", 0, disk_exceeded=True))
    assert run.status == Status.DISK_LIMIT and run.transcript.notes[-1][-1] is True  # no turn follows
    done = episode(TurnLimits())
    done.answer(SUBMIT)
    done.observe(Observation("", 0))
    assert done.status == Status.SUBMITTED and done.calls == 1
    dead = episode(TurnLimits())
    dead.answer(LS)
    dead.observe("APIError: container is not running")
    assert (dead.status, dead.detail, dead.fault) == (Status.SANDBOX_ERROR, "the sandbox failed at turn 1",
                                                      "APIError: container is not running")
    with pytest.raises(RuntimeError, match="follows an answer"):
        dead.observe(Observation("", 0))
