"""Scored episode groups -> the sequences of the trainer's one GRPO update path (train/batching.py).

By the episodes' context (rlvr/episodes.py), an episode becomes its training sequences, each a masked
train/batching.TokenSequence (prompt ids, completion ids, completion mask):

    step     one per turn [T turns]: (the turn's windowed prompt ids, the answer's sampled ids, all 1)
    episode  one [its T tokens], split at its first sampled token k:
                 prompt      ids[:k]       the rendered system and task turns
                 completion  ids[k:]       every later token: answers, glue, observations
                 mask        mask[k:]      1 on the tokens the policy sampled, 0 on glue and observations

The update scores only mask-1 tokens: observations get no log-prob and no gradient. One advantage per
episode: grpo.group_advantages of the rewards of the group's played episodes (`played`), given to each of its
sequences. A `step` episode's T turn samples each weigh 1/T in the loss (grpo.RolloutBatch.loss_weights), so that
an episode counts once whatever its length, as it does in `episode` context and in its group's advantages:
unweighted, a long episode (often one that ran to `max_turns` without solving) would outweigh a short one T to 1.
The G episodes of one task share their first prompt, so the samples are listed turn by turn across the group
(every episode's first turn, then every second turn, ...) and the shared-prefix layout runs that prompt once.
A group whose episodes all scored the same (all 0 or all 1) teaches nothing; dynamic sampling
(grpo.dynamic_fill) drops it and refills with new tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .episodes import NOT_STARTED, Episode

MaskedSequence = tuple[list[int], list[int], list[int]]
"""(prompt ids, completion ids, completion mask): a masked train/batching.TokenSequence."""


def _first_sampled(episode: Episode) -> int:
    """The index of the episode's first sampled token (its length if it sampled nothing)."""
    return next((i for i, m in enumerate(episode.tokens.mask) if m), len(episode.tokens.ids))


def episode_sequence(episode: Episode) -> MaskedSequence:
    """(prompt ids, later ids, their mask): a masked train/batching.TokenSequence; an episode that sampled
    nothing is all prompt."""
    tokens, first = episode.tokens, _first_sampled(episode)
    return tokens.ids[:first], tokens.ids[first:], tokens.mask[first:]


def episode_logprobs(episode: Episode) -> list[float]:
    """The sampling log-probs of `episode_sequence`'s later ids (0.0 on glue and observations): the behaviour
    policy's, for an update on episodes sampled ahead of it (grpo.async_steps)."""
    return episode.tokens.logprobs[_first_sampled(episode):]


def turn_sequences(episode: Episode) -> list[MaskedSequence]:
    """Context `step`: one sequence per turn, (its prompt ids, its sampled ids, all scored)."""
    return [(turn.prompt_ids, turn.ids, [1] * len(turn.ids)) for turn in episode.turn_samples]


def episode_samples(episode: Episode) -> list[tuple[MaskedSequence, list[float]]]:
    """The episode's training sequences, each with the sampling log-probs of its completion ids (0.0 where the
    mask is 0): one per turn (`step`), or the whole episode as one (`episode`)."""
    if episode.context == "step":
        return list(zip(turn_sequences(episode), [turn.logprobs for turn in episode.turn_samples], strict=True))
    return [(episode_sequence(episode), episode_logprobs(episode))]


@dataclass
class GroupSamples:
    """A group's played episodes as the update takes them (the fields of a train/grpo.Group)."""

    sequences: list[MaskedSequence]
    rewards: list[float]
    """One per played episode (`group_rewards`)."""
    rollout_of: list[int]
    """Per sequence, the index in `rewards` of its episode: its advantage, and its 1/T share of the episode."""
    logprobs: list[list[float]]
    """Per sequence, the sampling log-probs of its completion ids (0.0 where unscored)."""


def group_samples(group: list[Episode]) -> GroupSamples:
    """The played episodes' sequences, turn by turn across the group (the module docstring)."""
    per_episode = [episode_samples(e) for e in played(group)]
    order = sorted((turn, k) for k, samples in enumerate(per_episode) for turn in range(len(samples)))
    return GroupSamples([per_episode[k][turn][0] for turn, k in order], group_rewards(group), [k for _, k in order],
                        [per_episode[k][turn][1] for turn, k in order])


def played(group: list[Episode]) -> list[Episode]:
    """The episodes whose sandbox started: one that did not says nothing about the policy (its 0 would make an
    all-1 group look informative), so it is left out of the group's advantages, dynamic sampling and means."""
    return [e for e in group if e.detail != NOT_STARTED]


def group_rewards(group: list[Episode]) -> list[float]:
    """The rewards of a group's played episodes (every episode must be scored)."""
    return [e.reward.reward for e in played(group)]
