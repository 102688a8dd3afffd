"""Update batches: (prompt, completion) token sequences laid out for one forward pass.

Two layouts give the same per-token log-probs (a test checks it):

- padded: one row per sequence, right-padded to the longest, with an attention mask;
- padding-free: every sequence of the micro-batch concatenated into one row, with position ids that
  restart at 0 for each; transformers then keeps attention inside each sequence (flash-attention's
  variable-length kernels, or a block mask for sdpa/eager). No compute is spent on padding, which
  is what GRPO's mix of long and short completions otherwise wastes.

Either way `token_logprobs` hands back a padded [N, W-1] tensor, so the loss math never sees the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import grpo

Sequence = tuple[list[int], list[int]]  # (prompt ids, completion ids)


@dataclass
class Batch:
    ids: torch.Tensor
    """[N, W] padded, or [1, L] padding-free."""
    target_mask: torch.Tensor
    """[N, W-1]: 1 where position t predicts a completion token t+1."""
    attention_mask: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None
    lengths: list[int] | None = None
    """Padding-free only: each sequence's length, in order."""

    def token_logprobs(self, model, temperature: float = 1.0) -> torch.Tensor:
        """[N, W-1] log-probs of each next token (zeros past a sequence's end)."""
        if self.lengths is None:
            logits = model(input_ids=self.ids, attention_mask=self.attention_mask).logits[:, :-1]
            return grpo.token_logprobs(logits, self.ids[:, 1:], temperature)
        logits = model(input_ids=self.ids, position_ids=self.position_ids, use_cache=False).logits[:, :-1]
        flat = grpo.token_logprobs(logits, self.ids[:, 1:], temperature)[0]
        width = self.target_mask.shape[1]
        rows, start = [], 0
        for n in self.lengths:  # position start+t predicts token start+t+1 of the same sequence
            rows.append(torch.nn.functional.pad(flat[start: start + n - 1], (0, width - (n - 1))))
            start += n
        return torch.stack(rows)


def _target_mask(sequences: list[Sequence], width: int) -> torch.Tensor:
    mask = torch.zeros((len(sequences), width), dtype=torch.float)
    for i, (p, c) in enumerate(sequences):
        mask[i, len(p): len(p) + len(c)] = 1
    return mask[:, 1:]  # position t predicts token t+1


def make_batch(sequences: list[Sequence], pad_id: int, device, padding_free: bool = False) -> Batch:
    width = max(len(p) + len(c) for p, c in sequences)
    mask = _target_mask(sequences, width).to(device)
    if padding_free:
        tokens = [p + c for p, c in sequences]
        ids = torch.tensor([t for seq in tokens for t in seq]).unsqueeze(0)
        positions = torch.cat([torch.arange(len(seq)) for seq in tokens]).unsqueeze(0)
        return Batch(ids.to(device), mask, position_ids=positions.to(device), lengths=[len(s) for s in tokens])
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, (p, c) in enumerate(sequences):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attention[i, : len(p) + len(c)] = 1
    return Batch(ids.to(device), mask, attention_mask=attention.to(device))
