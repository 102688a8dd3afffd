"""The agent loop: the policy acts, one tool call at a time, in a sandbox.

    loop:
        prompt = steps.build_prompt(the run so far)    the system turn, the task, the last k steps
        completion = policy(prompt)                    -> <think>...</think> + one tool call
        format error?  tell the model what was wrong (counted, capped), ask again
        observation = the call run in the sandbox      -> the next step
    until `submit`, the step limit, the context limit or the time limit.

The prompt is built exactly as training examples are (`AgentConfig.rendering`, by default the
checkpoint's rendering record): the same history window, observation cap, call style, system prompt
and tools. The run is kept as a canonical Trajectory and can be written as a SWE-agent `.traj`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .actions import format_help, parse_completion, render_command_line
from .chat import SYSTEM_PROMPT, template_rendering
from .errors import FormatViolation, UserError
from .jsonio import atomic_writer
from .policy import Completion, ContextWindowExceeded, Policy, SamplingParams
from .policy.replay import ReplayPolicy
from .run_call import execute
from .sandbox import Sandbox
from .steps import (
    StepConfig,
    build_prompt,
    load_rendering,
    parse_history,
    prompt_tools,
    truncate_middle,
)
from .types import Step, Trajectory

FORMAT_HELP = "Your answer broke the required format: {error}. Answer with {how}."


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
    """Tool output kept in the saved run; the prompt shows `rendering.max_observation_chars` of it."""
    max_new_tokens: int = 1024
    temperature: float = 0.0
    """0: greedy, as the paper evaluates."""
    rendering: StepConfig = field(default_factory=StepConfig)
    """How prompts are built: a checkpoint's rendering record (see `rendering_for`), else training's defaults."""


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
    rendering = cfg.rendering
    tools = prompt_tools(rendering.tools, rendering)
    steps: list[Step] = []
    retry: list[dict[str, Any]] = []  # the broken answers since the last step, each with what was wrong
    responses: list[str] = []
    format_errors = tokens = 0
    start = time.monotonic()
    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    status = "step_limit"
    while len(steps) < cfg.max_steps:
        if time.monotonic() - start > cfg.time_limit:
            status = "time_limit"
            break
        run = Trajectory(instance_id, problem_statement, steps)
        messages = build_prompt(run, len(steps), rendering, rendering.tools) + retry
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
            parsed = parse_completion(completion.text, rendering.call_style, set(rendering.tools))
        except FormatViolation as e:
            format_errors += 1
            if format_errors > cfg.max_format_errors:
                status = "format_errors"
                break
            retry += [{"role": "assistant", "content": completion.text},
                      {"role": "user", "content": FORMAT_HELP.format(error=e, how=format_help(rendering.call_style))}]
            continue
        retry = []
        obs = execute(sandbox, parsed.call, timeout=cfg.step_timeout)
        output = truncate_middle(obs.output, cfg.max_observation_chars)
        if obs.timed_out:
            output += f"\n[the command was killed after {cfg.step_timeout:g} seconds]"
        steps.append(Step(parsed.thought, parsed.call, output,
                          {"exit_code": obs.exit_code, "timed_out": obs.timed_out, "seconds": round(obs.duration, 3)}))
        if parsed.call.name == "submit":
            status = "submitted"
            break
    patch = sandbox.diff()
    traj = Trajectory(instance_id, problem_statement, steps, patch=patch, resolved=None, source_format="canonical",
                      metadata={"exit_status": status, "format_errors": format_errors, "completion_tokens": tokens,
                                "rendering": rendering.to_dict()})
    return AgentRun(traj, status, patch, format_errors, tokens, responses)


def rendering_for(model: str, policy: Policy | None = None, log: Callable[[str], None] = print,
                  history: str | None = None, max_observation_chars: int | None = None,
                  call_style: str | None = None, base: StepConfig | None = None) -> StepConfig:
    """How the agent builds prompts for `model`: `base` if given, else the rendering record saved beside a
    checkpoint's weights, else training's defaults (said in one line, with the call style the policy's chat
    template implies); the arguments given override any of them."""
    record = base or (load_rendering(model) if Path(model).is_dir() else None)
    tokenizer = getattr(policy, "tokenizer", None)
    if record is None:
        record = StepConfig()
        if tokenizer is not None:  # also gives a tokenizer without a usable chat template srl-agent's own
            record.call_style, record.reasoning = template_rendering(tokenizer, "auto", log, model)
        if not model.startswith("replay:"):
            log(f"{model} has no rendering record (rendering.json, written by srl-agent train): assuming "
                f"training's defaults: the last {record.history} steps, observations cut at "
                f"{record.max_observation_chars} characters, {record.call_style} calls "
                "(--history, --max-observation-chars and --call-style override)")
    overrides: dict[str, Any] = {}
    if history is not None:
        try:
            overrides["history"] = parse_history(history)
        except ValueError as e:
            raise UserError(str(e)) from None
    if max_observation_chars is not None:
        overrides["max_observation_chars"] = max_observation_chars
    if call_style is not None and call_style != record.call_style:
        overrides["call_style"], overrides["reasoning"] = (template_rendering(tokenizer, call_style, log, model)
                                                           if tokenizer is not None else (call_style, "content"))
    rendering = replace(record, **overrides)
    if isinstance(policy, ReplayPolicy):  # a replayed expert answers in the run's call style
        policy.call_style = rendering.call_style
    return rendering


def to_swe_agent_traj(run: AgentRun) -> dict[str, Any]:
    """The run as a SWE-agent `.traj` (function-calling style), so SWE-agent's viewers open it."""
    traj = run.trajectory
    history: list[dict[str, Any]] = [
        {"role": "system", "content": traj.metadata.get("rendering", {}).get("system_prompt", SYSTEM_PROMPT),
         "agent": "main", "message_type": "system_prompt"},
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
