"""Scored episode groups -> the sequences of the trainer's one GRPO update path (train/batching.py).

An episode [T] becomes one masked sequence, split at its first sampled token:

    prompt      ids[:k]       the rendered system and task turns (k = the first index with mask 1)
    completion  ids[k:]       every later token: answers, glue, observations
    mask        mask[k:]      1 on the tokens the policy sampled, 0 on glue and observations

The G episodes of one task share their first prompt, so the shared-prefix layout runs it once per group.
The update scores only mask-1 tokens: observations get no log-prob and no gradient. One advantage per
episode: grpo.group_advantages of the rewards of the group's played episodes (`played`). A group whose
episodes all scored the same (all 0 or all 1) teaches nothing; dynamic sampling (grpo.dynamic_fill) drops
it and refills with new tasks.
"""

from __future__ import annotations

from .episodes import NOT_STARTED, Episode


def episode_sequence(episode: Episode) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, later ids, their mask): a masked train/batching.TokenSequence; an episode that sampled
    nothing is all prompt."""
    tokens = episode.tokens
    first = next((i for i, m in enumerate(tokens.mask) if m), len(tokens.ids))
    return tokens.ids[:first], tokens.ids[first:], tokens.mask[first:]


def played(group: list[Episode]) -> list[Episode]:
    """The episodes whose sandbox started: one that did not says nothing about the policy (its 0 would make an
    all-1 group look informative), so it is left out of the group's advantages, dynamic sampling and means."""
    return [e for e in group if e.detail != NOT_STARTED]


def group_rewards(group: list[Episode]) -> list[float]:
    """The rewards of a group's played episodes (every episode must be scored)."""
    return [e.reward.reward for e in played(group)]
