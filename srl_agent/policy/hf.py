"""A transformers model as a policy: batched sampling with token ids and log-probs."""

from __future__ import annotations

import torch

from ..steps import render_prompt
from ..train.grpo import token_logprobs
from . import Completion, Messages, SamplingParams


class HFPolicy:
    """`cache`: the KV cache transformers' `generate` keeps. `dynamic` grows it token by token; `static`
    allocates it once at its full length, so every decode step has the same shapes and, on CUDA,
    transformers compiles the step (torch.compile, CUDA graphs) instead of launching it kernel by kernel.
    Both sample the same ids with the same log-probs (tests/test_policies.py)."""

    def __init__(self, model, tokenizer, device: str | torch.device | None = None, synced_gpus: bool = False,
                 cache: str = "dynamic"):
        if cache not in ("dynamic", "static"):
            raise ValueError(f"cache must be dynamic or static, got {cache!r}")
        self.model, self.tokenizer, self.cache = model, tokenizer, cache
        self.synced_gpus = synced_gpus  # a sharded model: every process runs each generation step
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.eos_ids = sorted({i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                               if isinstance(i, int) and i >= 0})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    @classmethod
    def from_pretrained(cls, path: str, device: str | None = None, dtype: torch.dtype | None = None) -> HFPolicy:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..pretrained import from_pretrained

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = from_pretrained(AutoModelForCausalLM, path, dtype=dtype or "auto").to(device)
        return cls(model.eval(), from_pretrained(AutoTokenizer, path), device)

    @property
    def context_window(self) -> int | None:
        """Prompt plus completion tokens the model takes (None when its config does not say)."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def count_prompt_tokens(self, messages: Messages, tools: list[dict] | None) -> int:
        return len(self.encode_prompts([self.render(messages, tools)])[0])

    def render(self, messages: Messages, tools: list[dict] | None) -> str:
        return render_prompt(self.tokenizer, messages, tools)

    def encode_prompts(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams, with_logprobs: bool = True,
                     max_sequences: int | None = None) -> list[list[Completion]]:
        """Sample `params.n` completions per tokenized prompt, `max_sequences` at a time (left-padded).

        Log-probs need the logits of every generated position: ask for them only when used.
        """
        per_call = max(1, (max_sequences or len(prompt_ids) * params.n) // params.n)
        if len(prompt_ids) > per_call:
            return [g for i in range(0, len(prompt_ids), per_call)
                    for g in self.generate_ids(prompt_ids[i:i + per_call], params, with_logprobs)]
        width = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):
            ids[i, width - len(p):] = torch.tensor(p)
            attention[i, width - len(p):] = 1
        ids = ids.repeat_interleave(params.n, dim=0).to(self.device)
        attention = attention.repeat_interleave(params.n, dim=0).to(self.device)
        greedy = params.temperature <= 0
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(
            input_ids=ids, attention_mask=attention, do_sample=not greedy,
            temperature=None if greedy else params.temperature, top_p=None if greedy else params.top_p, top_k=None,
            max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
            return_dict_in_generate=True, output_logits=with_logprobs, synced_gpus=self.synced_gpus,
            cache_implementation=None if self.cache == "dynamic" else self.cache)
        self.model.train(was_training)
        new = out.sequences[:, width:]
        logprobs = token_logprobs(torch.stack(out.logits, dim=1), new, 1.0 if greedy else params.temperature).tolist() \
            if with_logprobs else [None] * len(new)
        completions = []
        for row, lp in zip(new.tolist(), logprobs, strict=True):
            end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            kept = row if end is None else row[: end + 1]  # the end-of-turn token is part of the answer
            text_ids = kept if end is None else kept[:-1]
            completions.append(Completion(self.tokenizer.decode(text_ids, skip_special_tokens=False), kept,
                                          lp[: len(kept)] if lp else None, "length" if end is None else "stop"))
        return [completions[i * params.n:(i + 1) * params.n] for i in range(len(prompt_ids))]

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        texts = [self.render(m, tools[i] if tools else None) for i, m in enumerate(prompts)]
        return self.generate_ids(self.encode_prompts(texts), params)
