"""The agent loop: the policy acts, one tool call at a time, in a sandbox.

    loop (turns.play, the turn engine RLVR's episodes share):
        prompt = steps.build_prompt(the run so far)    the system turn, the task, the last k steps
        completion = policy(prompt)                    -> <think>...</think> + one tool call
        format error?  tell the model what was wrong (counted, capped), ask again
        observation = the call run in the sandbox      -> the next step
    until `submit`, the step limit, the context limit, the time limit or the disk limit.

The prompt is built exactly as training examples are (`AgentConfig.rendering`, by default the
checkpoint's rendering record): the same history window, observation cap, call style, system prompt
and tools. The run is kept as a canonical Trajectory and can be written as a SWE-agent `.traj`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .actions import ParsedCompletion, render_command_line
from .chat import SYSTEM_PROMPT, template_rendering
from .errors import UserError
from .jsonio import atomic_writer
from .policy import Completion, Policy, SamplingParams
from .policy.replay import ReplayPolicy
from .sandbox import Observation, Sandbox
from .steps import StepConfig, build_prompt, load_rendering, parse_history, prompt_tools
from .turns import AgentEpisode, Status, TurnLimits, play
from .types import Step, Trajectory


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
    exit_status: Status
    """submitted, step_limit, format_errors, context_limit, time_limit or disk_limit (turns.Status)."""
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


@dataclass
class ChatTranscript:
    """The agent's run as chat messages (turns.Transcript): each prompt is rebuilt from the steps so far exactly as
    training's examples are, with the broken answers since the last step and their format help after it."""

    instance_id: str
    problem_statement: str
    rendering: StepConfig
    fits: Callable[[list[dict]], bool]
    """Whether a prompt fits the context limit (`fits_context`)."""
    steps: list[Step] = field(default_factory=list)
    retry: list[dict[str, Any]] = field(default_factory=list)
    """The broken answers since the last step, each followed by what was wrong."""
    responses: list[str] = field(default_factory=list)
    tokens: int = 0

    def prompt(self) -> list[dict]:
        run = Trajectory(self.instance_id, self.problem_statement, self.steps)
        return build_prompt(run, len(self.steps), self.rendering, self.rendering.tools) + self.retry

    def over_budget(self, messages: list[dict]) -> Status | None:
        return None if self.fits(messages) else Status.CONTEXT_LIMIT

    def add_answer(self, completion: Completion) -> None:
        self.tokens += completion.num_tokens
        self.responses.append(completion.text)

    def add_format_help(self, completion: Completion, help_text: str) -> None:
        self.retry += [{"role": "assistant", "content": completion.text}, {"role": "user", "content": help_text}]

    def add_observation(self, parsed: ParsedCompletion, completion: Completion, output: str, observation: Observation,
                        ended: bool) -> None:
        self.retry = []
        self.steps.append(Step(parsed.thought, parsed.call, output, {
            "exit_code": observation.exit_code, "timed_out": observation.timed_out,
            "seconds": round(observation.duration, 3)}))


def turn_limits(cfg: AgentConfig) -> TurnLimits:
    return TurnLimits(max_calls=cfg.max_steps, max_format_errors=cfg.max_format_errors, time_limit=cfg.time_limit,
                      step_timeout=cfg.step_timeout, max_observation_chars=cfg.max_observation_chars)


def run_agent(policy: Policy, sandbox: Sandbox, problem_statement: str, instance_id: str,
              cfg: AgentConfig | None = None) -> AgentRun:
    """One agent run to its end (turns.play); the saved observations keep `cfg.max_observation_chars`, the prompts
    show `cfg.rendering.max_observation_chars` of them."""
    cfg = cfg or AgentConfig()
    rendering = cfg.rendering
    tools = prompt_tools(rendering.tools, rendering)
    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    transcript = ChatTranscript(instance_id, problem_statement, rendering,
                                lambda messages: fits_context(policy, messages, tools, cfg))
    episode = AgentEpisode(transcript, sandbox, rendering.call_style, rendering.tools, turn_limits(cfg))
    status = play(episode, lambda messages: policy.generate([messages], [tools], params)[0][0])
    patch = sandbox.diff()
    traj = Trajectory(instance_id, problem_statement, transcript.steps, patch=patch, resolved=None,
                      source_format="canonical",
                      metadata={"exit_status": status.value, "format_errors": episode.format_errors,
                                "completion_tokens": transcript.tokens, "rendering": rendering.to_dict()})
    return AgentRun(traj, status, patch, episode.format_errors, transcript.tokens, transcript.responses)


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
