"""How RLVR episodes run and are scored: the `episodes.*` and `rlvr_reward.*` sections of a train config.

Kept apart from the engine (episodes.py) and the grader (reward.py) so that a config can be read, checked and
listed (`srl-agent train --help-config`) without importing either. Both are pydantic dataclasses: each field is
checked when set, unknown keys are refused, and `dataclasses.replace` still makes a changed copy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from ..sandbox import SandboxKind

Context = Literal["step", "episode"]
"""What one RLVR training sample is (`episodes.context`; rlvr/episodes.py): `step`, one turn with the windowed prompt
SFT, SRL and eval render; `episode`, a whole episode as one token sequence (`rendering.history: full`)."""

SECTION = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)
"""Every config section: unknown keys refused, fields documented by their docstrings, checked when assigned."""


@dataclass(config=SECTION)
class EpisodeConfig:
    """How RLVR episodes run (`episodes.*` in a train config; srl_agent/rlvr/episodes.py)."""

    group_size: int = Field(4, ge=1)
    """G: episodes per task; their rewards are compared with each other (GRPO's group)."""
    context: Context = "step"
    """The context shape RLVR trains on. `step`: each turn of an episode is one sample, its prompt the windowed
    messages that SFT, SRL and eval render (`rendering.history`, `rendering.max_observation_chars`), its completion
    the ids the policy sampled; the episode's advantage goes to each of its turns, each weighing 1/T of a T-turn
    episode. One checkpoint thus sees one context shape from SFT to eval. `episode`: the whole episode is one token
    sequence (every turn sees the whole history), which needs `rendering.history: full` (set unless told
    otherwise) and a prefix-preserving chat template."""
    max_turns: int = Field(10, ge=1)
    """Policy answers (tool calls and malformed ones) before an episode stops with `turn_limit`."""
    max_format_errors: int = 3
    """Malformed answers before an episode stops with `format_errors`."""
    max_new_tokens: int = Field(256, ge=1)
    """Tokens one answer may have."""
    max_episode_tokens: int = Field(4096, ge=1)
    """Tokens one training sequence may have: context `episode`, the episode's (prompt, answers, observations);
    context `step`, a turn's (its windowed prompt and answer). An episode whose next turn might pass it ends with
    `token_limit` (rlvr/episodes.py's truncation rule)."""
    temperature: float = 1.0
    """Sampling temperature of the episodes (the update recomputes log-probs at the same one)."""
    step_timeout: float = 60.0
    """Seconds one tool call may run in the sandbox."""
    workers: int = Field(4, ge=1)
    """Sandboxes started, run and graded at the same time."""
    batch_size: int | None = Field(None, ge=1)
    """Asynchronous episodes: the policy gets a batch once this many prompts wait. All three `batch_*` None: lock
    step, every live episode's turn in one batch (policy/batcher.py)."""
    batch_wait: float | None = Field(None, ge=0)
    """Asynchronous episodes: seconds the oldest waiting prompt waits for others once the policy is free."""
    batch_wait_share: float | None = Field(None, ge=0)
    """Asynchronous episodes: wait at most this share of the last batch's generation time, too."""
    disk_mb: int = Field(4096, ge=1)
    """Disk budget of each episode's sandbox in MiB (its copy of the repository included); writing past it ends
    the episode with `disk_limit` (srl_agent/sandbox: `SandboxConfig.disk_mb`)."""
    sandbox_kind: SandboxKind = "docker"
    """Where episodes run: docker, podman or bwrap (auto: docker where an engine answers, else bwrap; see
    srl_agent/sandbox)."""
    executor: Literal["local", "ray"] = "local"
    """Where the sandboxes live: `local` (this machine's engine) or `ray` (one Ray actor per sandbox, spread over
    the cluster's nodes, each on its node's own engine; the policy stays here; see rlvr/ray_sandbox.py)."""
    ray_address: str | None = None
    """executor `ray`: the cluster (`host:port`); None: RAY_ADDRESS, else a local one."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The rule between fields (each field's own bounds are checked when it is set)."""
        if self.max_new_tokens >= self.max_episode_tokens:
            raise ValueError(f"episodes.max_new_tokens ({self.max_new_tokens}) must be below max_episode_tokens "
                             f"({self.max_episode_tokens})")


@dataclass(config=SECTION)
class EpisodeRewardConfig:
    """How an RLVR episode is scored by its tests (`rlvr_reward.*` in a train config; srl_agent/rlvr/reward.py;
    the SRL step reward: reward.SRLRewardConfig)."""

    partial_credit: bool = False
    """Unresolved episodes earn the fraction of FAIL_TO_PASS tests passing, cancelled (0) by any broken
    PASS_TO_PASS test. Off: the reward is 1 if resolved, else 0 (the official metric)."""
    format_penalty: float = Field(0.0, ge=0)
    """Subtracted once per malformed turn (no parsable tool call). 0 turns it off."""
    eval_timeout: float = Field(300.0, gt=0)
    """Seconds the eval_script may run; a timeout scores 0 (reason `eval_timeout`)."""
