"""vLLM as a policy (the `vllm` extra): fast rollouts, with the trainer's weights synced in.

vLLM is imported only when this policy is built, so everything else works without it.
"""

from __future__ import annotations

from ..errors import UserError
from . import Completion, Messages, SamplingParams


def vllm_sampling_kwargs(params: SamplingParams) -> dict:
    """Our SamplingParams as vllm.SamplingParams keyword arguments (log-probs of the sampled tokens)."""
    greedy = params.temperature <= 0
    return {"n": params.n, "temperature": 0.0 if greedy else params.temperature,
            "top_p": 1.0 if greedy else params.top_p, "max_tokens": params.max_new_tokens, "logprobs": 0}


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"vLLM is not installed ({e}); install it with: pip install 'srl-agent[vllm]'") from None
    return vllm


class VLLMPolicy:
    def __init__(self, model: str, gpu_memory_utilization: float = 0.5, dtype: str = "auto", **engine_kwargs):
        vllm = import_vllm()
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
                            enable_sleep_mode=True, **engine_kwargs)
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

    def sync_weights(self, model) -> None:
        """Load the trainer's current weights into the engine (before it samples after an update).

        A LoRA model is merged for the copy and unmerged afterwards: the engine holds plain weights.
        """
        if not hasattr(model, "peft_config"):
            self._load(model.state_dict())
            return
        model.merge_adapter()
        try:
            self._load({k.replace(".base_layer", ""): v for k, v in model.get_base_model().state_dict().items()
                        if "lora_" not in k})
        finally:
            model.unmerge_adapter()

    def _load(self, state: dict) -> None:
        self.llm.collective_rpc(lambda worker: worker.model_runner.model.load_weights(state.items()))

    def sleep(self) -> None:
        """Free the engine's GPU memory while the trainer updates (vLLM sleep mode)."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()


def _completion(output) -> Completion:
    logprobs = [next(iter(lp.values())).logprob for lp in output.logprobs] if output.logprobs else None
    return Completion(output.text, list(output.token_ids), logprobs,
                      "length" if output.finish_reason == "length" else "stop")
