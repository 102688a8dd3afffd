"""Episodes as rollouts: G agent runs per task, each in its own sandbox, kept as the exact tokens sampled.

    per task: G sandboxes from the task's image (opened concurrently, always closed)
    per episode, on its own thread, turn by turn (turns.py, the engine the agent loop shares):
        prompt ids (by `episodes.context`, below)
        the prompt waits in the batcher; the waiting prompts go out in one generate_ids call (policy/batcher.py:
        all live episodes' together in lock step, or as size and wait limits say)
        the completion's sampled ids kept as sampled, with their log-probs
        the completion parsed; a tool call run in the episode's sandbox (`workers` sandboxes busy at once)
    until `submit`, `max_turns`, `max_format_errors`, the token budget or the disk budget; then the reward
    (reward.py), while the other episodes play on.

Two context shapes (`EpisodeConfig.context`); in both, the ids trained on are exactly the ids sampled (never
re-tokenised from text), so recomputed log-probs equal the sampling ones:

    step     each turn's prompt is the one eval's agent builds (agent.ChatTranscript: steps.build_prompt with
             `rendering.history`, observations cut to `rendering.max_observation_chars`, then the broken answers
             since the last step and their format help), rendered and tokenised as SRL's examples are. Each answer
             is a TurnSample [prompt ids, sampled ids, log-probs]: SFT, SRL, RLVR and eval see one context shape.
             Observations are kept as eval's agent keeps them (agent.AgentConfig.max_observation_chars) and cut
             for the prompt by build_prompt, as eval's are.
    episode  the episode is one sequence (EpisodeTokens): the rendered first prompt (mask 0), then each answer's
             sampled ids (mask 1) and the template's glue and the observation or format help (mask 0); the
             policy's next prompt is the sequence itself. The glue is the text the chat template adds between
             the sampled answer and the next generation prompt, found as the difference between two renderings of
             the conversation; that needs a prefix-preserving template (appending a turn leaves the text before it
             unchanged) and the full history in the prompt (`rendering.history` None). Either missing fails loudly
             (UserError) at the first turn.

Truncation: an episode whose next turn might not fit (its sequence, or in `step` context the turn's prompt, plus
max_new_tokens > max_episode_tokens) ends before it with status `token_limit`, is scored on the patch it has, and
is counted. Nothing is cut from a sequence, so every kept token is one the policy saw.

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
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from ..actions import ParsedCompletion
from ..agent import AgentConfig, ChatTranscript
from ..chat import render_prompt
from ..errors import UserError
from ..policy import Completion, SamplingParams
from ..policy.batcher import LOCK_STEP, Batcher, BatchLimits
from ..run_call import execute
from ..sandbox import Observation, SandboxConfig
from ..steps import StepConfig, build_prompt, prompt_tools
from ..turns import AgentEpisode, Status, TurnLimits, play
from ..types import Step, ToolCall, Trajectory
from .config import Context, EpisodeConfig
from .reward import EpisodeRewardConfig, Reward, fault_line, unplayable, verify


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


@dataclass
class TurnSample:
    """One turn of a `step`-context episode as a training sample. Shapes: prompt_ids [P]; ids, logprobs [C]."""

    prompt_ids: list[int]
    """The prompt the policy answered: the windowed messages SRL and eval render at this step, tokenised."""
    ids: list[int]
    """The answer's ids exactly as sampled (its end id included)."""
    logprobs: list[float]
    """The sampling-time log-prob of each sampled id."""

    def __post_init__(self) -> None:
        if len(self.logprobs) != len(self.ids):
            raise ValueError(f"{len(self.ids)} sampled ids but {len(self.logprobs)} log-probs")


NOT_STARTED = "the sandbox did not start"
"""The `detail` of an episode whose sandbox could not be opened."""

@dataclass
class Episode:
    """One agent run on one task as a rollout."""

    instance_id: str
    tokens: EpisodeTokens = field(default_factory=EpisodeTokens)
    """Context `episode`: the episode as one sequence (empty in `step` context)."""
    context: Context = "episode"
    """How it was played and is trained on (EpisodeConfig.context; the module docstring)."""
    turn_samples: list[TurnSample] = field(default_factory=list)
    """Context `step`: one per answer, broken ones included."""
    steps: list[Step] = field(default_factory=list, repr=False)
    """Context `step`: the run as a trajectory's steps (as eval's agent records it), from which the prompts were
    built."""
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
    policy_versions: list[int | None] = field(default_factory=list)
    """The policy version that sampled each answer (Completion.policy_version): how stale the episode is."""


def continuation(before: str, after: str) -> str:
    """The text `after` adds to `before`; UserError when the template rewrote what came before (a pure function)."""
    if not after.startswith(before):
        at = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), min(len(before),
                                                                                             len(after)))
        raise UserError("RLVR needs a prefix-preserving chat template and the full history in the prompt (rendering "
                        "history: full): appending a turn changed the text before it at character "
                        f"{at} ({before[max(0, at - 40):at + 40]!r} became {after[max(0, at - 40):at + 40]!r})")
    return after[len(before):]


def prompt_ids(tokenizer, messages: list[dict[str, Any]], rendering: StepConfig) -> list[int]:
    """Chat messages -> the ids of the rendered generation prompt, as SRL's examples are tokenised."""
    text = render_prompt(tokenizer, messages, prompt_tools(rendering.tools, rendering))
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def start_episode(tokenizer, instance: dict, rendering: StepConfig, context: Context = "episode") -> Episode:
    """The episode before its first turn. Context `episode`: the rendered system and task turns as its sequence's
    first (context) ids; `step`: nothing yet (each turn renders its own prompt: StepTranscript)."""
    if context == "step":
        return Episode(instance["instance_id"], context="step")
    if rendering.history is not None:
        raise UserError(f"RLVR episodes keep the whole history in the prompt, but the rendering keeps the last "
                        f"{rendering.history} steps: use `--history full`")
    messages = build_prompt(Trajectory(instance["instance_id"], instance["problem_statement"], []), 0, rendering,
                            rendering.tools)
    text = render_prompt(tokenizer, messages, prompt_tools(rendering.tools, rendering))
    tokens = EpisodeTokens()
    tokens.add(tokenizer(text, add_special_tokens=False)["input_ids"])  # `text` is rendered once, above
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
    return SandboxConfig(image=instance["image"], default_timeout=cfg.step_timeout, disk_mb=cfg.disk_mb)


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


@dataclass
class TokenTranscript:
    """An RLVR episode's run as exact token ids (turns.Transcript): the policy's prompt is the episode's own sequence,
    each answer its sampled ids, then the template's glue and the next message as context (`add_turn_context`)."""

    episode: Episode
    tokenizer: Any
    rendering: StepConfig
    max_new_tokens: int
    max_episode_tokens: int

    def prompt(self) -> list[int]:
        return self.episode.tokens.ids

    def over_budget(self, ids: list[int]) -> Status | None:
        return Status.TOKEN_LIMIT if len(ids) + self.max_new_tokens > self.max_episode_tokens else None

    def add_answer(self, completion: Completion) -> None:
        self.episode.policy_versions.append(completion.policy_version)
        self.episode.tokens.add(completion.token_ids, completion.logprobs)
        self.episode.text += self.tokenizer.decode(completion.token_ids, skip_special_tokens=False)

    def add_format_help(self, completion: Completion, help_text: str) -> None:
        self._add_context(completion, {"role": "user", "content": help_text})

    def add_observation(self, parsed: ParsedCompletion, completion: Completion, output: str, observation: Observation,
                        ended: bool) -> None:
        if not ended:  # a finished episode's sequence ends with its last answer
            self._add_context(completion, {"role": "tool", "content": output})

    def _add_context(self, completion: Completion, message: dict[str, Any]) -> None:
        add_turn_context(self.tokenizer, self.episode, [{"role": "assistant", "content": completion.text}, message],
                         self.rendering)


@dataclass
class StepTranscript:
    """A `step`-context episode's run (turns.Transcript): each prompt is the one eval's agent builds (`chat`, an
    agent.ChatTranscript), rendered and tokenised; each answer is kept as a TurnSample of those prompt ids and the
    ids exactly as sampled."""

    episode: Episode
    chat: ChatTranscript
    tokenizer: Any
    max_new_tokens: int
    max_sample_tokens: int
    asked: list[int] = field(default_factory=list)
    """The ids of the last prompt: the next answer answers it."""

    def prompt(self) -> list[int]:
        self.asked = prompt_ids(self.tokenizer, self.chat.prompt(), self.chat.rendering)
        return self.asked

    def over_budget(self, ids: list[int]) -> Status | None:
        return Status.TOKEN_LIMIT if len(ids) + self.max_new_tokens > self.max_sample_tokens else None

    def add_answer(self, completion: Completion) -> None:
        self.chat.add_answer(completion)
        self.episode.policy_versions.append(completion.policy_version)
        self.episode.turn_samples.append(TurnSample(self.asked, completion.token_ids, completion.logprobs))

    def add_format_help(self, completion: Completion, help_text: str) -> None:
        self.chat.add_format_help(completion, help_text)

    def add_observation(self, parsed: ParsedCompletion, completion: Completion, output: str, observation: Observation,
                        ended: bool) -> None:
        self.chat.add_observation(parsed, completion, output, observation, ended)


def transcript(episode: Episode, instance: dict, tokenizer, rendering: StepConfig, cfg: EpisodeConfig):
    """What the episode remembers and how it prompts, by its context (the module docstring)."""
    if episode.context == "episode":
        return TokenTranscript(episode, tokenizer, rendering, cfg.max_new_tokens, cfg.max_episode_tokens)
    # the token budget is StepTranscript's own, so the chat's context check passes everything
    chat = ChatTranscript(instance["instance_id"], instance["problem_statement"], rendering, lambda _: True,
                          steps=episode.steps)
    return StepTranscript(episode, chat, tokenizer, cfg.max_new_tokens, cfg.max_episode_tokens)


def turn_limits(cfg: EpisodeConfig, rendering: StepConfig) -> TurnLimits:
    # `episode`: the observation enters the sequence as kept. `step`: build_prompt cuts it for each prompt, so it is
    # kept as eval's agent keeps it (cut to the same budget here too, a long one would carry two omission markers)
    kept = rendering.max_observation_chars if cfg.context == "episode" else AgentConfig.max_observation_chars
    return TurnLimits(max_answers=cfg.max_turns, max_format_errors=cfg.max_format_errors,
                      step_timeout=cfg.step_timeout, max_observation_chars=kept)


def run_episodes(policy, instances: list[dict], cfg: EpisodeConfig, rendering: StepConfig,
                 reward_cfg: EpisodeRewardConfig, open_sandbox=_open_sandbox,
                 timings: dict[str, float] | None = None, batching: BatchLimits = LOCK_STEP) -> list[list[Episode]]:
    """G episodes per instance, each played on its own thread; returns [len(instances)][G] finished, scored episodes.

    `policy` needs `tokenizer` and `generate_ids` (HFPolicy). `batching`: when the prompts that wait go to the
    policy as one batch (policy/batcher.py); LOCK_STEP (every live episode's turn together) plays the episodes of a
    turn-by-turn loop. Every sandbox is closed on return and on error. A sandbox that does not start scores its
    episode 0 (`sandbox_error`); see the module doc for when it raises. `timings["generate"]`, when given, grows by
    the seconds spent sampling."""
    tokenizer = policy.tokenizer
    episodes = [start_episode(tokenizer, inst, rendering, cfg.context) for inst in instances
                for _ in range(cfg.group_size)]
    instance_of = [inst for inst in instances for _ in range(cfg.group_size)]
    params = SamplingParams(n=1, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    limits = turn_limits(cfg, rendering)

    def generate(prompts: list[list[int]], _group) -> list[Completion]:
        started = time.perf_counter()
        completions = [completion for completion, in policy.generate_ids(prompts, params)]
        if timings is not None:  # only the batcher's thread writes it
            timings["generate"] += time.perf_counter() - started
        return completions

    with contextlib.ExitStack() as stack, ThreadPoolExecutor(cfg.workers) as pool:
        sandboxes, start_errors = _open_all(pool, stack, open_sandbox, instance_of, cfg)  # all closed at exit
        playing: dict[int, AgentEpisode] = {}
        for i, (episode, instance, error) in enumerate(zip(episodes, instance_of, start_errors, strict=True)):
            if error is not None:  # ends before its first turn, scored 0 with the reason
                episode.status, episode.detail = Status.SANDBOX_ERROR, NOT_STARTED
                episode.reward = unplayable(instance, reward_cfg, fault_line(error))
            else:
                playing[i] = AgentEpisode(transcript(episode, instance, tokenizer, rendering, cfg), sandboxes[i],
                                          rendering.call_style, rendering.tools, limits)
        slots = threading.Semaphore(cfg.workers)  # tool calls and grading: `workers` sandboxes busy at once

        def run_call(sandbox, call: ToolCall, timeout: float) -> Observation | str:
            with slots:
                return _run_call(sandbox, call, timeout)

        def play_and_score(i: int) -> None:
            try:
                play(playing[i], functools.partial(batcher, key=i), run_call)
            finally:
                batcher.leave()
            _settle(episodes[i], playing[i])
            with slots:
                _score(episodes[i], playing[i], sandboxes[i], instance_of[i], reward_cfg)

        with Batcher(generate, batching) as batcher, \
                ThreadPoolExecutor(max(1, len(playing)), thread_name_prefix="episode") as threads:
            batcher.join(len(playing))
            futures = [threads.submit(play_and_score, i) for i in playing]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException as e:  # a policy error or Ctrl-C: the other episodes stop at their next turn
                batcher.close(e)
                raise
    g = cfg.group_size
    return [episodes[k * g:(k + 1) * g] for k in range(len(instances))]


def _settle(episode: Episode, played: AgentEpisode) -> None:
    """Copy how the played episode ended onto its record."""
    episode.status, episode.detail = played.status, played.detail
    episode.turns, episode.format_errors = played.answers, played.format_errors


def _run_call(sandbox, call: ToolCall, timeout: float) -> Observation | str:
    """The call's Observation, or why the sandbox could not run it (the episode ends, the run goes on)."""
    try:
        return execute(sandbox, call, timeout=timeout)
    except Exception as e:  # a dead container raises engine-specific errors
        return fault_line(e)


def _score(episode: Episode, played: AgentEpisode, sandbox, instance: dict, reward_cfg: EpisodeRewardConfig) -> None:
    """The patch and reward of a finished episode: 0 with the reason if its sandbox failed, else its tests' verdict
    (a sandbox that dies now scores 0 with the reason)."""
    if played.status == Status.SANDBOX_ERROR:  # nothing can run in it, not even the tests
        episode.reward = unplayable(instance, reward_cfg, played.fault, episode.format_errors)
        return
    try:
        episode.patch = sandbox.diff()
    except Exception as e:  # engine errors of many types: the tests still run (and fail alike if it is dead)
        episode.detail = "; ".join(x for x in (episode.detail, f"diff failed: {fault_line(e)}") if x)
    episode.reward, _ = verify(sandbox, instance, reward_cfg, episode.format_errors)
