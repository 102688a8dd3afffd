"""Scored episode groups -> GRPO tensors over whole episodes (mask-weighted), flat groups dropped.

Shapes: B groups of G episodes, N = kept groups * G sequences, T = the longest sequence.

    input_ids       [N, T]      each episode's tokens, right-padded
    attention_mask  [N, T]
    loss_mask       [N, T-1]    1 where the token predicted at t+1 was sampled by the policy
    old_logprobs    [N, T-1]    its sampling-time log-prob (0 elsewhere)
    advantages      [N]         grpo.group_advantages of the episode rewards, one per episode

A group whose episodes all scored the same (all 0 or all 1) has no advantage to learn from and is
dropped (grpo.keep_groups, the dynamic-sampling filter); the caller refills the batch with new groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train.grpo import group_advantages, keep_groups, token_logprobs
from .episodes import Episode


@dataclass
class EpisodeBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    groups_dropped: int


def group_rewards(groups: list[list[Episode]]) -> torch.Tensor:
    """[B, G] episode rewards (every episode must be scored)."""
    return torch.tensor([[e.reward.reward for e in group] for group in groups], dtype=torch.float32)


def episode_batch(groups: list[list[Episode]], pad_id: int, scale: bool = True) -> EpisodeBatch | None:
    """The training tensors of the groups that teach something; None when every group is flat."""
    rewards = group_rewards(groups)
    keep = keep_groups(rewards)
    kept = [e for group, k in zip(groups, keep.tolist(), strict=True) if k for e in group]
    if not kept:
        return None
    advantages = group_advantages(rewards[keep], scale=scale).flatten()
    width = max(len(e.tokens.ids) for e in kept)
    ids = torch.full((len(kept), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(kept), width), dtype=torch.long)
    mask = torch.zeros((len(kept), width), dtype=torch.float32)
    old = torch.zeros((len(kept), width), dtype=torch.float32)
    for row, episode in enumerate(kept):
        n = len(episode.tokens.ids)
        ids[row, :n] = torch.tensor(episode.tokens.ids)
        attention[row, :n] = 1
        mask[row, :n] = torch.tensor(episode.tokens.mask, dtype=torch.float32)
        old[row, :n] = torch.tensor(episode.tokens.logprobs)
    return EpisodeBatch(ids, attention, mask[:, 1:], old[:, 1:], advantages, int((~keep).sum()))


def episode_logprobs(model, batch: EpisodeBatch, temperature: float = 1.0) -> torch.Tensor:
    """[N, T-1] log-probs of each next token under `model` (at the sampling temperature)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    return token_logprobs(logits, batch.input_ids[:, 1:], temperature)
