"""The agent loop: the policy acts, one tool call at a time, in a sandbox.

    messages = [system (role, format, tools), task]
    loop:
        completion = policy(messages)                 -> <think>...</think> + one tool call
        format error?  tell the model what was wrong (counted, capped), ask again
        observation = the call run in the sandbox      -> a tool message
    until `submit`, the step limit, the context limit or the time limit.

The run is kept as a canonical Trajectory and can be written as a SWE-agent `.traj`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import parse_completion, render_command_line
from .errors import FormatViolation, UserError
from .execute import execute
from .jsonio import atomic_writer
from .policy import Completion, ContextWindowExceeded, Policy, SamplingParams
from .sandbox import Sandbox
from .steps import SYSTEM_PROMPT, truncate_middle
from .tools import STANDARD_TOOLS, tool_schemas
from .types import Step, Trajectory

_ISSUE = re.compile(r"<issue>\n(.*)\n</issue>", re.DOTALL)
FORMAT_HELP = ("Your answer broke the required format: {error}. Answer with your reasoning inside "
               "<think>...</think>, then exactly one tool call: "
               '<tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>.')


@dataclass
class AgentConfig:
    """Limits of one agent run."""

    max_steps: int = 50
    """Tool calls before the run stops with `step_limit`."""
    max_format_errors: int = 3
    """Answers in a broken format before the run stops with `format_errors`."""
    max_context_tokens: int | None = None
    """Stop with `context_limit` when the prompt grows past this. Unset: the model's context window less
    `max_new_tokens`, for policies that know it; a served model's refusal of a long prompt stops it too."""
    time_limit: float = 1800.0
    step_timeout: float = 120.0
    max_observation_chars: int = 10_000
    max_new_tokens: int = 1024
    temperature: float = 0.0
    """0: greedy, as the paper evaluates."""


@dataclass
class AgentRun:
    trajectory: Trajectory
    exit_status: str  # submitted | step_limit | format_errors | context_limit | time_limit
    patch: str
    format_errors: int = 0
    completion_tokens: int = 0
    responses: list[str] = field(default_factory=list)
    """Every raw answer of the policy, format errors included (the .traj `response`s)."""


def context_limit(policy: Policy, cfg: AgentConfig) -> int | None:
    """Prompt tokens allowed: `cfg.max_context_tokens`, else the model's window less the answer's tokens;
    None for policies that cannot count (a served model refuses a long prompt itself)."""
    if cfg.max_context_tokens is not None:
        limit, why = cfg.max_context_tokens, "--max-context-tokens"
    elif getattr(policy, "context_window", None) and hasattr(policy, "count_prompt_tokens"):
        limit = policy.context_window - cfg.max_new_tokens
        why = f"the model's {policy.context_window}-token context window less --max-new-tokens {cfg.max_new_tokens}"
    else:
        return None
    if limit <= 0:
        raise UserError(f"no room for a prompt: {why} leaves {limit} tokens")
    return limit


def fits_context(policy: Policy, messages: list[dict], tools: list[dict] | None, cfg: AgentConfig) -> bool:
    limit = context_limit(policy, cfg)
    if limit is None or not hasattr(policy, "count_prompt_tokens"):
        return True
    return policy.count_prompt_tokens(messages, tools) <= limit


def run_agent(policy: Policy, sandbox: Sandbox, problem_statement: str, instance_id: str,
              cfg: AgentConfig | None = None) -> AgentRun:
    cfg = cfg or AgentConfig()
    tools = tool_schemas()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Resolve this issue in the repository:\n\n<issue>\n{problem_statement}\n</issue>"}]
    steps: list[Step] = []
    responses: list[str] = []
    format_errors = tokens = 0
    start = time.monotonic()
    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    status = "step_limit"
    while len(steps) < cfg.max_steps:
        if time.monotonic() - start > cfg.time_limit:
            status = "time_limit"
            break
        if not fits_context(policy, messages, tools, cfg):
            status = "context_limit"
            break
        try:
            completion: Completion = policy.generate([messages], [tools], params)[0][0]
        except ContextWindowExceeded:
            status = "context_limit"
            break
        tokens += completion.num_tokens
        responses.append(completion.text)
        try:
            parsed = parse_completion(completion.text, "hermes", set(STANDARD_TOOLS))
        except FormatViolation as e:
            format_errors += 1
            if format_errors > cfg.max_format_errors:
                status = "format_errors"
                break
            messages += [{"role": "assistant", "content": completion.text},
                         {"role": "user", "content": FORMAT_HELP.format(error=e)}]
            continue
        obs = execute(sandbox, parsed.call, timeout=cfg.step_timeout)
        output = truncate_middle(obs.output, cfg.max_observation_chars)
        if obs.timed_out:
            output += f"\n[the command was killed after {cfg.step_timeout:g} seconds]"
        steps.append(Step(parsed.thought, parsed.call, output,
                          {"exit_code": obs.exit_code, "timed_out": obs.timed_out, "seconds": round(obs.duration, 3)}))
        messages += [{"role": "assistant", "content": f"<think>\n{parsed.thought}\n</think>",
                      "tool_calls": [{"type": "function", "function": {
                          "name": parsed.call.name, "arguments": json.dumps(parsed.call.arguments)}}]},
                     {"role": "tool", "content": output}]
        if parsed.call.name == "submit":
            status = "submitted"
            break
    patch = sandbox.diff()
    traj = Trajectory(instance_id, problem_statement, steps, patch=patch, resolved=None, source_format="canonical",
                      metadata={"exit_status": status, "format_errors": format_errors, "completion_tokens": tokens})
    return AgentRun(traj, status, patch, format_errors, tokens, responses)


def to_swe_agent_traj(run: AgentRun) -> dict[str, Any]:
    """The run as a SWE-agent `.traj` (function-calling style), so SWE-agent's viewers open it."""
    traj = run.trajectory
    history: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT, "agent": "main", "message_type": "system_prompt"},
        {"role": "user", "content": traj.problem_statement, "agent": "main", "message_type": "observation"}]
    entries = []
    for i, step in enumerate(traj.steps):
        action = render_command_line(step.action)
        call_id = f"call_{i}"
        history.append({"role": "assistant", "content": step.thought, "thought": step.thought, "action": action,
                        "agent": "main", "message_type": "action", "tool_calls": [{
                            "id": call_id, "type": "function",
                            "function": {"name": step.action.name, "arguments": json.dumps(step.action.arguments)}}]})
        history.append({"role": "tool", "content": step.observation, "agent": "main", "message_type": "observation",
                        "tool_call_ids": [call_id]})
        entries.append({"action": action, "observation": step.observation, "thought": step.thought,
                        "response": step.thought, "execution_time": step.metadata.get("seconds", 0.0), "state": {}})
    return {"environment": "srl-agent", "trajectory": entries, "history": history,
            "info": {"submission": run.patch, "exit_status": run.exit_status,
                     "model_stats": {"tokens_received": run.completion_tokens, "api_calls": len(run.responses)}}}


def save_run(run: AgentRun, folder: str | Path) -> tuple[Path, Path]:
    """`<id>.json` (canonical) and `<id>.traj` (SWE-agent), written atomically."""
    folder = Path(folder)
    name = run.trajectory.id.replace("/", "__")
    canonical, swe_agent = folder / f"{name}.json", folder / f"{name}.traj"
    with atomic_writer(canonical) as f:
        json.dump(run.trajectory.to_dict(), f, ensure_ascii=False)
    with atomic_writer(swe_agent) as f:
        json.dump(to_swe_agent_traj(run), f, ensure_ascii=False, indent=1)
    return canonical, swe_agent


class ReplayPolicy:
    """A policy that answers with expert trajectories' steps (scripted experts, eval tests).

    Stateless, so eval workers can share it: the trajectory is the one whose problem statement is
    the prompt's issue, and the step is the number of answers already in the prompt (the last step
    repeats past the end).
    """

    def __init__(self, trajectories: Trajectory | list[Trajectory]):
        self.trajectories = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)

    def _trajectory_for(self, messages: list[dict]) -> Trajectory:
        task = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
        issue = _ISSUE.search(task)
        wanted = (issue[1] if issue else task).strip()
        for trajectory in self.trajectories:
            if trajectory.problem_statement.strip() == wanted:
                return trajectory
        raise ValueError(f"no replayed trajectory has this task's problem statement ({wanted[:60]!r}...)")

    def generate(self, prompts: list[list[dict]], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        from .actions import render_completion

        out = []
        for messages in prompts:
            steps = self._trajectory_for(messages).steps
            step = steps[min(sum(m.get("role") == "assistant" for m in messages), len(steps) - 1)]
            out.append([Completion(render_completion(step.thought, step.action), [], None)] * params.n)
        return out
