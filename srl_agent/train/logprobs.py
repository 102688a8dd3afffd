"""Memory-safe log-probs: the LM head and log-softmax run only at scored positions, a chunk at a time.

A plain forward makes [N, T, V] logits for every position, and `log_softmax` in fp32 doubles them:
8 x 9k tokens x 152k vocabulary is about 45 GB. Here the decoder's hidden states [N, T, H] are kept
(H is ~30x smaller than V), the K positions that predict a completion token are picked out, and
each chunk of `chunk_tokens` of them goes through the head and the log-softmax on its own:

    logp[k] = logits[k, target[k]] / temperature - logsumexp(logits[k] / temperature)

With gradients on, each chunk is checkpointed: the backward pass recomputes that chunk's logits
instead of keeping them, so at most one chunk of fp32 logits is alive at a time.

The pass runs inside the model's own forward (`install_logprob_forward`), because FSDP2 and
DeepSpeed ZeRO-3 gather a module's sharded weights only when that module is called.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

IGNORE = -100
"""A target that is not scored (prompt, padding)."""


def _chunk_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """[k, H] hidden states, [k] targets -> [k] log-probs (fp32 whatever the compute dtype)."""
    logits = head(hidden).float() / temperature
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def chunked_logprobs(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor, temperature: float = 1.0,
                     chunk_tokens: int = 1024) -> torch.Tensor:
    """Log-probs of `targets` [K] after `hidden` [K, H] through `head`, `chunk_tokens` positions at a time."""
    pieces = []
    for start in range(0, len(targets), chunk_tokens):
        h, t = hidden[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logprobs, head, h, t, temperature, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(head, h, t, temperature))
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)


def install_logprob_forward(model, chunk_tokens: int = 1024) -> None:
    """Let `model(..., logprob_targets=T, temperature=t)` return [B, S] log-probs instead of logits.

    `T` [B, S] holds at each position the token it predicts, or IGNORE; the answer is 0 there.
    Every other call (generate, a plain forward) is the model's own. The new forward is installed
    before `accelerate.prepare`, so DDP, FSDP2 and ZeRO-3 wrap it like the original one.
    """
    original = model.forward
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model
    decoder, head = causal_lm.get_decoder(), causal_lm.get_output_embeddings()

    def forward(*args, logprob_targets: torch.Tensor | None = None, temperature: float = 1.0, **kwargs):
        if logprob_targets is None:
            return original(*args, **kwargs)
        hidden = decoder(*args, **kwargs).last_hidden_state
        scored = logprob_targets != IGNORE
        logp = chunked_logprobs(hidden[scored], head, logprob_targets[scored], temperature, chunk_tokens)
        return torch.zeros(scored.shape, dtype=logp.dtype, device=logp.device).masked_scatter(scored, logp)

    model.forward = forward
