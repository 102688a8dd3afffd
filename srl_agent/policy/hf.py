"""A transformers model as a policy: batched sampling with token ids and log-probs."""

from __future__ import annotations

import math

import torch

from ..chat import render_prompt
from . import Completion, Messages, SamplingParams

CHECKPOINT_SAMPLING_OFF = {
    "top_k": None, "min_p": None, "typical_p": None, "epsilon_cutoff": None, "eta_cutoff": None,
    "repetition_penalty": None, "no_repeat_ngram_size": None, "bad_words_ids": None, "sequence_bias": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "min_new_tokens": None, "min_length": 0, "num_beams": 1}
"""What `generate` would otherwise take from a checkpoint's generation_config.json beyond our SamplingParams
(Qwen2.5-Coder-Instruct ships repetition_penalty 1.1 and top_k 20): rollouts must come from the distribution
the trainer scores, the model's own at our temperature and top_p."""

BACKEND_CACHES = {"hf": "dynamic", "hf_static": "static", "hf_paged": "paged"}
"""HFPolicy's cache for each rollout_backend of the run config that samples with it."""

PAGED_BATCH_TOKENS = 4096
"""Most prompt tokens one continuous-batching forward takes (longer prefills go in several): with sdpa the
engine keeps an attention mask of this many rows over the whole cache."""


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities of `targets` [N, T] under `logits` [N, T, V] (at the sampling temperature)."""
    logits = logits.float() / temperature
    return torch.gather(logits.log_softmax(dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


class HFPolicy:
    """`cache`: the KV cache transformers' `generate` keeps. `dynamic` grows it token by token; `static`
    allocates it once at its full length, so every decode step has the same shapes and, on CUDA,
    transformers compiles the step (torch.compile, CUDA graphs) instead of launching it kernel by kernel.
    `paged` is transformers' continuous batching (`generate_batch`): no padding, the KV cache in pages, a
    finished sequence's slot refilled at once. All three sample the same greedy ids with the same log-probs
    (tests/test_policies.py); dynamic and static also the same ids under one seed."""

    def __init__(self, model, tokenizer, device: str | torch.device | None = None, synced_gpus: bool = False,
                 cache: str = "dynamic"):
        if cache not in BACKEND_CACHES.values():
            raise ValueError(f"cache must be dynamic, static or paged, got {cache!r}")
        if cache == "paged" and synced_gpus:  # continuous batching runs its own loop, not generate's synced steps
            raise ValueError("the paged cache (continuous batching) cannot sample from a model sharded over processes")
        self.model, self.tokenizer, self.cache = model, tokenizer, cache
        self.synced_gpus = synced_gpus  # a sharded model: every process runs each generation step
        self.device = torch.device(device) if device else next(model.parameters()).device
        # Every end id the checkpoint declares ends a turn, as in `generate`'s default and vLLM: Qwen2.5-Instruct
        # declares <|im_end|> and <|endoftext|>, Phi-3.5 and Gemma end turns with an id other than the tokenizer's eos.
        declared = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        declared = [declared] if isinstance(declared, int) else list(declared or [])
        self.eos_ids = sorted({i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                           *declared) if isinstance(i, int) and i >= 0})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.version = 0
        """The weights' version, stamped on each completion: whoever updates the weights counts it up (a rollout
        sampled while later updates ran knows how stale it is)."""

    @classmethod
    def from_pretrained(cls, path: str, device: str | None = None, dtype: torch.dtype | None = None) -> HFPolicy:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..pretrained import from_pretrained

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # Our full fine-tuning checkpoints hold the fp32 master weights; on a GPU, sample in bf16 as training did.
        bf16 = str(device).startswith("cuda") and torch.cuda.is_bf16_supported()
        model = from_pretrained(AutoModelForCausalLM, path, dtype=dtype or (torch.bfloat16 if bf16 else "auto"))
        model = model.to(device)
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
        """Sample `params.n` completions per tokenized prompt, `max_sequences` at a time (left-padded, or each its
        own continuous-batching request with the paged cache).

        Log-probs need the logits of every generated position: ask for them only when used.
        """
        per_call = max(1, (max_sequences or len(prompt_ids) * params.n) // params.n)
        if len(prompt_ids) > per_call:
            return [g for i in range(0, len(prompt_ids), per_call)
                    for g in self.generate_ids(prompt_ids[i:i + per_call], params, with_logprobs)]
        was_training = self.model.training
        self.model.eval()
        try:
            sample = self._sample_paged if self.cache == "paged" else self._sample_padded
            rows, logprobs = sample(prompt_ids, params, with_logprobs)
        finally:
            self.model.train(was_training)
        completions = []
        for row, lp in zip(rows, logprobs or [None] * len(rows), strict=True):
            end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            kept = row if end is None else row[: end + 1]  # the end-of-turn token is part of the answer
            text_ids = kept if end is None else kept[:-1]
            completions.append(Completion(self.tokenizer.decode(text_ids, skip_special_tokens=False), kept,
                                          lp[: len(kept)] if lp else None, "length" if end is None else "stop",
                                          policy_version=self.version))
        return [completions[i * params.n:(i + 1) * params.n] for i in range(len(prompt_ids))]

    def generation_settings(self, params: SamplingParams) -> dict:
        """The generation config of a call: our sampling params, our end ids, and nothing of the checkpoint's own."""
        greedy = params.temperature <= 0
        return {"do_sample": not greedy, "temperature": None if greedy else params.temperature,
                "top_p": None if greedy else params.top_p, "max_new_tokens": params.max_new_tokens,
                "eos_token_id": self.eos_ids, "pad_token_id": self.pad_id, **CHECKPOINT_SAMPLING_OFF}

    def _sample_padded(self, prompt_ids: list[list[int]], params: SamplingParams,
                       with_logprobs: bool) -> tuple[list[list[int]], list[list[float]] | None]:
        """`generate` over the prompts left-padded to one width: the new ids of each of the N = prompts x n
        sequences (padded after their end) and, if asked, their log-probs."""
        width = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):
            ids[i, width - len(p):] = torch.tensor(p)
            attention[i, width - len(p):] = 1
        ids = ids.repeat_interleave(params.n, dim=0).to(self.device)
        attention = attention.repeat_interleave(params.n, dim=0).to(self.device)
        out = self.model.generate(
            input_ids=ids, attention_mask=attention, **self.generation_settings(params), return_dict_in_generate=True,
            output_logits=with_logprobs, synced_gpus=self.synced_gpus,
            cache_implementation=None if self.cache == "dynamic" else self.cache)
        new = out.sequences[:, width:]
        temperature = params.temperature if params.temperature > 0 else 1.0
        logprobs = token_logprobs(torch.stack(out.logits, dim=1), new, temperature).tolist() if with_logprobs else None
        return new.tolist(), logprobs

    def _sample_paged(self, prompt_ids: list[list[int]], params: SamplingParams,
                      with_logprobs: bool) -> tuple[list[list[int]], list[list[float]] | None]:
        """Continuous batching: every one of the N = prompts x n sequences is its own request. Its log-probs are
        the engine's: of the sampled token after the temperature (and top_p, which renormalises over the nucleus:
        equal to `generate`'s only at top_p 1). It draws from torch's global generator: seed with torch.manual_seed.

        Only arguments that transformers 5.17 and 5.24 both take: `num_return_sequences` is left out (5.17's
        `generate_batch` drops the forked copies from its answer), and the cache is sized in blocks, whose token
        count is `page_size` in 5.24 and `block_size` in 5.17."""
        from transformers import ContinuousBatchingConfig, GenerationConfig

        generation = GenerationConfig(**self.generation_settings(params))
        requests = [p for p in prompt_ids for _ in range(params.n)]
        engine = ContinuousBatchingConfig(return_logprobs=with_logprobs)
        block = getattr(engine, "page_size", None) or engine.block_size
        # Sized for these requests: left unset, the cache takes most of the free memory (of the host, on CPU).
        engine.num_blocks = sum(math.ceil((len(p) + params.max_new_tokens) / block) for p in requests)
        engine.max_batch_tokens = min(sum(len(p) for p in requests), PAGED_BATCH_TOKENS)
        out = self.model.generate_batch(requests, generation_config=generation, continuous_batching_config=engine)
        failed = [o.error for o in out.values() if o.error is not None]
        if len(out) != len(requests) or failed:
            raise RuntimeError(f"continuous batching returned {len(out) - len(failed)} of {len(requests)} "
                               f"completions{': ' + failed[0] if failed else ''}")
        results = list(out.values())  # in request order
        return [r.generated_tokens for r in results], [r.logprobs for r in results] if with_logprobs else None

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        texts = [self.render(m, tools[i] if tools else None) for i, m in enumerate(prompts)]
        return self.generate_ids(self.encode_prompts(texts), params)
