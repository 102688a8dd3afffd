"""Episodes as rollouts: G agent runs per task, each in its own sandbox, kept as the exact tokens sampled.

    per task: G sandboxes from the task's image (opened concurrently, always closed)
    sequence = ids of the rendered first prompt                                   mask 0
    per turn (all live episodes of all tasks in ONE generate_ids call):
        + the completion's sampled ids                                            mask 1, its log-probs kept
        the completion parsed; a tool call run in the episode's sandbox (`workers` at once)
        + the template's glue and the observation (or the format help)            mask 0
    until `submit`, `max_turns`, `max_format_errors` or the token budget; then the reward (reward.py).

Token ids are never re-derived from the conversation: the policy's next prompt is the episode's own
sequence, so the ids trained on are exactly the ids sampled, and recomputed log-probs equal the sampled
ones. The glue is the text the chat template adds between the sampled answer and the next generation
prompt, found as the difference between two renderings of the conversation; that needs a
prefix-preserving template (appending a turn leaves the text before it unchanged) and the full history
in the prompt (`rendering.history` None). Either missing fails loudly (UserError) at the first turn.

Truncation: an episode whose next turn might not fit (sequence + max_new_tokens > max_episode_tokens)
ends before it with status `token_limit`, is scored on the patch it has, and is counted. Nothing is cut
from a sequence, so every kept token is one the policy saw.

Faults: a sandbox that cannot start (tried twice), dies, hangs or floods output ends its own episode with
status `sandbox_error` (reward 0, its tests not run; `detail` says when, `reward.reason` why) and the others
go on. An episode whose sandbox did not start (`detail` NOT_STARTED) never generates and is left out of its group's
statistics (rlvr/batch.py: the engine, not the policy, failed). Two start failures raise instead, since no episode could
be played through them and zeros would hide them: a UserError (a missing image, an engine that cannot
be reached or refuses the container: the user must act, and the message says how), and a call in which
every sandbox failed (the engine, not one episode, is at fault). Every sandbox that opened is closed.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..actions import format_help, parse_completion
from ..agent import FORMAT_HELP
from ..chat import render_prompt
from ..errors import FormatViolation, UserError
from ..policy import SamplingParams
from ..run_call import execute
from ..sandbox import SandboxConfig
from ..steps import StepConfig, build_prompt, prompt_tools, truncate_middle
from ..types import Trajectory
from .reward import EpisodeRewardConfig, Reward, fault_line, unplayable, verify


@dataclass
class EpisodeConfig:
    """How RLVR episodes run (`episodes.*` in a train config)."""

    group_size: int = 4
    """G: episodes per task; their rewards are compared with each other (GRPO's group)."""
    max_turns: int = 10
    """Policy answers (tool calls and malformed ones) before an episode stops with `turn_limit`."""
    max_format_errors: int = 3
    """Malformed answers before an episode stops with `format_errors`."""
    max_new_tokens: int = 256
    """Tokens one answer may have."""
    max_episode_tokens: int = 4096
    """Tokens one episode's sequence may have (prompt, answers, observations); see the module's truncation rule."""
    temperature: float = 1.0
    """Sampling temperature of the episodes (the update recomputes log-probs at the same one)."""
    step_timeout: float = 60.0
    """Seconds one tool call may run in the sandbox."""
    workers: int = 4
    """Sandboxes started, run and graded at the same time."""
    sandbox_kind: str = "docker"
    """Where episodes run: docker, podman or bwrap (see srl_agent/sandbox)."""
    executor: str = "local"
    """Where the sandboxes live: `local` (this machine's engine) or `ray` (one Ray actor per sandbox, spread over
    the cluster's nodes, each on its node's own engine; the policy stays here; see rlvr/ray_sandbox.py)."""
    ray_address: str | None = None
    """executor `ray`: the cluster (`host:port`); None: RAY_ADDRESS, else a local one."""

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ValueError(f"episodes.executor must be local or ray, got {self.executor!r}")
        if self.group_size < 1 or self.max_turns < 1 or self.workers < 1:
            raise ValueError("episodes.group_size, max_turns and workers must be >= 1")
        if self.max_new_tokens >= self.max_episode_tokens:
            raise ValueError(f"episodes.max_new_tokens ({self.max_new_tokens}) must be below max_episode_tokens "
                             f"({self.max_episode_tokens})")


@dataclass
class EpisodeTokens:
    """One episode's sequence. Shapes: ids, mask, logprobs all [T]; logprobs 0.0 where mask is 0."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    """1 on tokens the policy sampled (trained on), 0 on prompt, glue and observation tokens."""
    logprobs: list[float] = field(default_factory=list)
    """The sampling-time log-prob of each sampled token (the GRPO ratio's old log-probs)."""

    def add(self, ids: list[int], logprobs: list[float] | None = None) -> None:
        """Append sampled ids (with their log-probs) or, without log-probs, context ids (mask 0)."""
        if logprobs is not None and len(logprobs) != len(ids):
            raise ValueError(f"{len(ids)} sampled ids but {len(logprobs)} log-probs")
        self.ids += ids
        self.mask += [1 if logprobs is not None else 0] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


NOT_STARTED = "the sandbox did not start"
"""The `detail` of an episode whose sandbox could not be opened."""

@dataclass
class Episode:
    """One agent run on one task as a rollout."""

    instance_id: str
    tokens: EpisodeTokens
    status: str = ""
    """One of metrics.STATUSES once finished (see the module docstring)."""
    turns: int = 0
    format_errors: int = 0
    patch: str = ""
    reward: Reward | None = None
    detail: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list, repr=False)
    text: str = field(default="", repr=False)
    """The rendered text so far: decode(sampled ids) and the rendered prompts, joined (for the prefix check)."""


def continuation(before: str, after: str) -> str:
    """The text `after` adds to `before`; UserError when the template rewrote what came before (a pure function)."""
    if not after.startswith(before):
        at = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), min(len(before),
                                                                                             len(after)))
        raise UserError("RLVR needs a prefix-preserving chat template and the full history in the prompt (rendering "
                        "history: full): appending a turn changed the text before it at character "
                        f"{at} ({before[max(0, at - 40):at + 40]!r} became {after[max(0, at - 40):at + 40]!r})")
    return after[len(before):]


def start_episode(tokenizer, instance: dict, rendering: StepConfig) -> Episode:
    """The episode before its first turn: the rendered system and task turns as context ids."""
    if rendering.history is not None:
        raise UserError(f"RLVR episodes keep the whole history in the prompt, but the rendering keeps the last "
                        f"{rendering.history} steps: use `--history full`")
    messages = build_prompt(Trajectory(instance["instance_id"], instance["problem_statement"], []), 0, rendering,
                            rendering.tools)
    text = render_prompt(tokenizer, messages, prompt_tools(rendering.tools, rendering))
    tokens = EpisodeTokens()
    tokens.add(tokenizer(text, add_special_tokens=False)["input_ids"])
    return Episode(instance["instance_id"], tokens, messages=messages, text=text)


def add_turn_context(tokenizer, episode: Episode, new_messages: list[dict[str, Any]], rendering: StepConfig) -> None:
    """Append the messages after a sampled answer; their glue + text (the difference of renderings) as context ids.

    An answer the policy closed with an end id the template does not write there (Qwen2.5 declares <|endoftext|>
    an end id beside <|im_end|>) keeps it as sampled; the template's own glue follows it."""
    episode.messages += new_messages
    after = render_prompt(tokenizer, episode.messages, prompt_tools(rendering.tools, rendering))
    before = episode.text
    last = tokenizer.decode(episode.tokens.ids[-1:], skip_special_tokens=False) if episode.tokens.mask[-1:] == [1] \
        else ""
    if not after.startswith(before) and last in tokenizer.get_added_vocab() and after.startswith(before[:-len(last)]):
        before = before[:-len(last)]
    episode.tokens.add(tokenizer(continuation(before, after), add_special_tokens=False)["input_ids"])
    episode.text = after


def sandbox_config(instance: dict, cfg: EpisodeConfig) -> SandboxConfig:
    """The sandbox of one episode of `instance` (here or on a Ray node): the task's image, the hardened defaults."""
    return SandboxConfig(image=instance["image"], default_timeout=cfg.step_timeout)


def _open_sandbox(instance: dict, cfg: EpisodeConfig):
    config, base_commit = sandbox_config(instance, cfg), instance.get("base_commit")
    if cfg.executor == "ray":
        from .ray_sandbox import RaySandbox

        return RaySandbox(config, cfg.sandbox_kind, base_commit, cfg.ray_address)
    from ..sandbox import open_sandbox

    return open_sandbox(config, kind=cfg.sandbox_kind, base_commit=base_commit)


def _open_all(pool: ThreadPoolExecutor, stack: contextlib.ExitStack, open_sandbox, instances: list[dict],
              cfg: EpisodeConfig) -> tuple[list, list[BaseException | None]]:
    """One sandbox per episode, opened `workers` at a time and entered in `stack`; (sandboxes, errors), aligned
    with `instances`: a sandbox where it opened, else None and why. Raises what no episode can score (module doc)."""
    opening = [pool.submit(open_sandbox, inst, cfg) for inst in instances]
    submitted = list(opening)
    try:
        for k, (future, inst) in enumerate(zip(opening, instances, strict=True)):
            error = future.exception()
            if error is not None and not isinstance(error, UserError):  # a loaded engine's failure: once more
                opening[k] = pool.submit(open_sandbox, inst, cfg)
                submitted.append(opening[k])
        errors = [f.exception() for f in opening]
    except BaseException:  # Ctrl-C while starting: no new starts, and every sandbox that opened is closed
        for future in submitted:
            future.cancel()
        for future in submitted:
            if not future.cancelled() and future.exception() is None:
                future.result().close()
        raise
    sandboxes = [stack.enter_context(f.result()) if e is None else None for f, e in zip(opening, errors, strict=True)]
    for error in errors:
        if isinstance(error, UserError):
            raise error
    if errors and all(errors):
        raise RuntimeError(f"none of the {len(errors)} sandboxes could start: {fault_line(errors[0])}") from errors[0]
    return sandboxes, errors


def run_episodes(policy, instances: list[dict], cfg: EpisodeConfig, rendering: StepConfig,
                 reward_cfg: EpisodeRewardConfig, open_sandbox=_open_sandbox,
                 timings: dict[str, float] | None = None) -> list[list[Episode]]:
    """G episodes per instance, played turn by turn; returns [len(instances)][G] finished, scored episodes.

    `policy` needs `tokenizer` and `generate_ids` (HFPolicy). Every sandbox is closed on return and on error.
    A sandbox that does not start scores its episode 0 (`sandbox_error`); see the module doc for when it raises.
    `timings["generate"]`, when given, grows by the seconds spent sampling (the rest is the sandboxes')."""
    tokenizer = policy.tokenizer
    episodes = [start_episode(tokenizer, inst, rendering) for inst in instances for _ in range(cfg.group_size)]
    instance_of = [inst for inst in instances for _ in range(cfg.group_size)]
    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(cfg.workers) as pool:
        sandboxes, start_errors = _open_all(pool, stack, open_sandbox, instance_of, cfg)  # all closed at exit
        for episode, instance, error in zip(episodes, instance_of, start_errors, strict=True):
            if error is not None:  # ends before its first turn, scored 0 with the reason
                episode.status, episode.detail = "sandbox_error", NOT_STARTED
                episode.reward = unplayable(instance, reward_cfg, fault_line(error))
        while live := [i for i, e in enumerate(episodes) if not e.status]:
            for i in live:
                if len(episodes[i].tokens.ids) + cfg.max_new_tokens > cfg.max_episode_tokens:
                    episodes[i].status = "token_limit"
            live = [i for i in live if not episodes[i].status]
            if not live:
                break
            started = time.perf_counter()
            completions = policy.generate_ids([episodes[i].tokens.ids for i in live], params)
            if timings is not None:
                timings["generate"] += time.perf_counter() - started
            calls = {}
            for i, (completion,) in zip(live, completions, strict=True):
                episode = episodes[i]
                episode.turns += 1
                episode.tokens.add(completion.token_ids, completion.logprobs)
                episode.text += tokenizer.decode(completion.token_ids, skip_special_tokens=False)
                answer = {"role": "assistant", "content": completion.text}
                try:
                    calls[i] = (parse_completion(completion.text, rendering.call_style, set(rendering.tools)), answer)
                except FormatViolation as e:
                    episode.format_errors += 1
                    if episode.format_errors > cfg.max_format_errors:
                        episode.status = "format_errors"
                        continue
                    help_text = FORMAT_HELP.format(error=e, how=format_help(rendering.call_style))
                    add_turn_context(tokenizer, episode, [answer, {"role": "user", "content": help_text}], rendering)
            ran = pool.map(_run_call, [sandboxes[i] for i in calls], [c.call for c, _ in calls.values()],
                           [cfg] * len(calls))
            observations = dict(zip(calls, ran, strict=True))
            for i, (parsed, answer) in calls.items():
                obs = observations[i]
                if isinstance(obs, str):  # the sandbox failed: nothing more can run in it, not even the tests
                    episode = episodes[i]
                    episode.status, episode.detail = "sandbox_error", f"the sandbox failed at turn {episode.turns}"
                    episode.reward = unplayable(instance_of[i], reward_cfg, obs, episode.format_errors)
                elif parsed.call.name == "submit":
                    episodes[i].status = "submitted"
                else:
                    output = truncate_middle(obs.output, rendering.max_observation_chars)
                    if obs.timed_out:
                        output += f"\n[the command was killed after {cfg.step_timeout:g} seconds]"
                    add_turn_context(tokenizer, episodes[i], [answer, {"role": "tool", "content": output}], rendering)
            for i in live:
                if not episodes[i].status and episodes[i].turns >= cfg.max_turns:
                    episodes[i].status = "turn_limit"
        ended = [i for i, episode in enumerate(episodes) if episode.reward is None]  # not by a sandbox_error
        list(pool.map(_finish, [episodes[i] for i in ended], [sandboxes[i] for i in ended],
                      [instance_of[i] for i in ended], [reward_cfg] * len(ended)))
    g = cfg.group_size
    return [episodes[k * g:(k + 1) * g] for k in range(len(instances))]


def _run_call(sandbox, call, cfg: EpisodeConfig):
    """The call's Observation, or why the sandbox could not run it (the episode ends, the run goes on)."""
    try:
        return execute(sandbox, call, timeout=cfg.step_timeout)
    except Exception as e:  # a dead container raises engine-specific errors
        return fault_line(e)


def _finish(episode: Episode, sandbox, instance: dict, reward_cfg: EpisodeRewardConfig) -> None:
    """The patch and reward of an episode that ended in a live sandbox (one that dies now scores 0 with the reason)."""
    try:
        episode.patch = sandbox.diff()
    except Exception as e:  # engine errors of many types: the tests still run (and fail alike if it is dead)
        episode.detail = "; ".join(x for x in (episode.detail, f"diff failed: {fault_line(e)}") if x)
    episode.reward, _ = verify(sandbox, instance, reward_cfg, episode.format_errors)
