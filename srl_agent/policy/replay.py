"""A policy that answers with recorded expert steps (the scripted expert, eval tests, `--model replay:...`)."""

from __future__ import annotations

import re

from ..actions import CallStyle, render_completion
from ..steps import steps_taken
from ..types import Trajectory
from . import Completion, Messages, SamplingParams

_ISSUE = re.compile(r"<issue>\n(.*)\n</issue>", re.DOTALL)


class ReplayPolicy:
    """Answers with expert trajectories' steps, in `call_style`.

    Stateless, so eval workers can share it: the trajectory is the one whose problem statement is
    the prompt's issue, and the step is the number of steps already taken (those the history window
    left out, which the task turn counts, plus the answers shown); the last step repeats past the end.
    """

    def __init__(self, trajectories: Trajectory | list[Trajectory], call_style: CallStyle = "hermes"):
        self.trajectories = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
        self.call_style = call_style

    def _trajectory_for(self, messages: Messages) -> Trajectory:
        task = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
        issue = _ISSUE.search(task)
        wanted = (issue[1] if issue else task).strip()
        for trajectory in self.trajectories:
            if trajectory.problem_statement.strip() == wanted:
                return trajectory
        raise ValueError(f"no replayed trajectory has this task's problem statement ({wanted[:60]!r}...)")

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        out = []
        for messages in prompts:
            steps = self._trajectory_for(messages).steps
            step = steps[min(steps_taken(messages), len(steps) - 1)]
            out.append([Completion(render_completion(step.thought, step.action, self.call_style), [], None)] * params.n)
        return out
