"""vLLM as a policy (the `vllm` extra): fast rollouts, with the trainer's weights loaded in.

Two uses. `vllm:PATH` (eval) is a plain engine. Colocated with training (`colocate=True`), each
training process runs its own engine in its own process on its own GPU, through vLLM's external
launcher (torchrun/accelerate set the rank and device; a one-process run gets them from
`set_launcher_env`), the pattern of TRL's `vllm_mode="colocate"`. Between sampling phases it sleeps
at level 2, which frees both its weights and its KV cache without copying the weights to CPU (fresh
ones are loaded on every wake anyway); PyTorch gives back what it cached before each wake:

    wake_up(weights) -> load_weights, one parameter at a time -> reset_prefix_cache -> wake_up(kv_cache)
    -> generate ... -> sleep(level=2)

vLLM is imported only when this policy is built, so everything else works without it.
Answers keep their special tokens (`skip_special_tokens=False`): the SRL format is made of them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

import torch

from ..errors import UserError
from . import Completion, Messages, SamplingParams


def vllm_sampling_kwargs(params: SamplingParams) -> dict:
    """Our SamplingParams as vllm.SamplingParams keyword arguments (log-probs of the sampled tokens).

    Special tokens stay in the text: the tiny tokenizer (and Qwen's) mark <think> and <tool_call> special,
    and vLLM would strip them by default, so every answer would fail the format check.
    """
    greedy = params.temperature <= 0
    return {"n": params.n, "temperature": 0.0 if greedy else params.temperature,
            "top_p": 1.0 if greedy else params.top_p, "max_tokens": params.max_new_tokens, "logprobs": 0,
            "skip_special_tokens": False}


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"vLLM is not installed ({e}); install it with: pip install 'srl-agent[vllm]'") from None
    return vllm


def set_launcher_env() -> None:
    """What vLLM's external launcher reads from torchrun's environment, set where no launcher did, as for a
    one-process `srl-agent train`; what a launcher set stays. With no process group vLLM starts one, whose store
    listens on MASTER_PORT for the whole run: a free port, so that two runs on one machine (one per GPU) don't clash."""
    if torch.distributed.is_initialized():  # a group started by other means: its rank and size, and this GPU
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        local_rank = torch.cuda.current_device() if torch.cuda.is_available() else 0
    else:
        rank, world, local_rank = 0, 1, 0
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    os.environ.setdefault("WORLD_SIZE", str(world))
    os.environ.setdefault("MASTER_ADDR", "localhost")
    if "MASTER_PORT" not in os.environ:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])


class VLLMPolicy:
    def __init__(self, model: str, gpu_memory_utilization: float = 0.5, dtype: str | None = None,
                 colocate: bool = False, seed: int = 0, **engine_kwargs):
        """`dtype` by default: bf16 when colocated, as training computes ("auto" maps our fp32 checkpoints to fp16
        before vLLM 0.10.1); otherwise "auto": bf16 for them from 0.10.1 on where the GPU has it, else fp16."""
        vllm = import_vllm()
        self._vllm = vllm
        dtype = dtype or ("bfloat16" if colocate else "auto")
        if colocate:  # in this process, on its GPU; each process samples its own prompts, so seeds differ
            set_launcher_env()
            engine_kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1, seed=seed,
                                 enable_sleep_mode=True)
            torch.cuda.empty_cache()  # vLLM starts only if its share of the GPU is free, and cached counts as taken
        self.llm = vllm.LLM(model=model, gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams, with_logprobs: bool = True,
                     max_sequences: int | None = None) -> list[list[Completion]]:
        """The trainer's entry point: tokenized prompts in, completions with token ids out."""
        kwargs = vllm_sampling_kwargs(params)
        if not with_logprobs:
            kwargs.pop("logprobs")
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids],
                                    self._vllm.SamplingParams(**kwargs), use_tqdm=False)
        return [[_completion(o) for o in out.outputs] for out in outputs]

    @property
    def context_window(self) -> int | None:
        return getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)

    def render(self, messages: Messages, tools: list[dict] | None) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                  add_generation_prompt=True)

    def count_prompt_tokens(self, messages: Messages, tools: list[dict] | None) -> int:
        return len(self.tokenizer.encode(self.render(messages, tools), add_special_tokens=False))

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        texts = [self.render(m, tools[i] if tools else None) for i, m in enumerate(prompts)]
        outputs = self.llm.generate(texts, self._vllm.SamplingParams(**vllm_sampling_kwargs(params)), use_tqdm=False)
        return [[_completion(o) for o in out.outputs] for out in outputs]

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Weights into the engine one tensor at a time (the trainer gathers each from its shards as it goes)."""
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model  # in-process: external launcher
        for name, tensor in named_tensors:
            model.load_weights([(name, tensor)])

    def wake_up(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Ready to sample with these weights: the level-2 sleep discarded the old ones and the KV cache.

        vLLM allocates outside PyTorch's caching allocator, so before each allocation PyTorch gives back what it
        only cached: the update's activations and gradients, then the tensors gathered or merged for the engine
        (a no-op where CUDA was never initialized)."""
        torch.cuda.empty_cache()
        self.llm.wake_up(tags=["weights"])
        self.load_weights(named_tensors)
        self.llm.reset_prefix_cache()  # cached prompts were computed with the old weights
        torch.cuda.empty_cache()
        self.llm.wake_up(tags=["kv_cache"])

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights and KV cache) while the trainer updates."""
        self.llm.sleep(level=2)


def _completion(output) -> Completion:
    logprobs = [next(iter(lp.values())).logprob for lp in output.logprobs] if output.logprobs else None
    return Completion(output.text, list(output.token_ids), logprobs,
                      "length" if output.finish_reason == "length" else "stop")
