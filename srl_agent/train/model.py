"""Model and tokenizer for a run: the tiny built-from-config model, or any transformers checkpoint."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from ..policy.hf import CHECKPOINT_SAMPLING_OFF
from ..pretrained import from_pretrained
from ..tokenizer import TINY_TOKENIZER, load_tokenizer
from .config import TrainConfig
from .logprobs import install_logprob_forward

ADAPTER_DIR = "adapter"
CONFIG_PREFIX = "config:"
"""`model: config:FOLDER` builds a randomly initialised model from FOLDER/config.json (no weights, no hub)."""


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether forward and backward run in bf16 (`bf16`, by default on CUDA); weights stay fp32 either way."""
    return cfg.bf16 if cfg.bf16 is not None else device.type == "cuda"


def build_tiny_model(cfg: TrainConfig, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    t = cfg.tiny_model
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                         num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                         num_key_value_heads=t.num_key_value_heads, max_position_embeddings=t.max_position_embeddings,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
                         attn_implementation=cfg.attn_implementation)
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config)


def load_model(cfg: TrainConfig, weights: str | None = None, adapter: str | None = None,
               device: torch.device | None = None):
    """(model, tokenizer) on `device` (default: the best one). `weights` overrides where the weights come from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per checkpoint write would drown the run's own progress
    device = device or pick_device()
    source = weights or cfg.init_from or (None if cfg.model == "tiny" else cfg.model)
    shape_only = source is not None and source.startswith(CONFIG_PREFIX)  # random weights, a real shape
    tokenizer_source = cfg.tokenizer or (None if shape_only else source) or TINY_TOKENIZER
    tokenizer = load_tokenizer(tokenizer_source) if tokenizer_source == TINY_TOKENIZER else \
        from_pretrained(AutoTokenizer, tokenizer_source)
    # Trained weights stay fp32 (the master copy; bf16 compute comes from autocast or FSDP2/DeepSpeed): an
    # lr-5e-7 Adam step is ~100x smaller than a bf16 weight's rounding step. Frozen LoRA base weights
    # take no update, so they may stay bf16.
    dtype = torch.bfloat16 if cfg.lora and compute_bf16(cfg, device) else torch.float32
    if source is None:
        model = build_tiny_model(cfg, tokenizer).to(dtype)
    elif shape_only:
        from transformers import AutoConfig

        torch.manual_seed(cfg.seed)
        config = from_pretrained(AutoConfig, source[len(CONFIG_PREFIX):])
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=cfg.attn_implementation)
    else:
        model = from_pretrained(AutoModelForCausalLM, source, dtype=dtype, attn_implementation=cfg.attn_implementation)
    if cfg.lora:
        from peft import LoraConfig, PeftModel, get_peft_model

        if adapter:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     lora_dropout=cfg.lora_dropout,
                                                     target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM"))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    install_logprob_forward(model, cfg.logprob_chunk_tokens)
    return model.to(device), tokenizer


def save_model(model, tokenizer, path: Path, weights: dict[str, torch.Tensor] | None = None) -> None:
    """An HF-format checkpoint every tool loads: full weights (LoRA merged in), plus the adapter if any.

    `weights`: the whole state dict of a sharded model, gathered (the model itself then holds shards).
    Its generation_config.json keeps the end ids but none of the base checkpoint's sampling shaping
    (Qwen2.5-Coder-Instruct: repetition_penalty 1.1, top_k 20), which `vllm serve` and `generate` apply to
    every request that does not set them: served, the policy samples the distribution it was trained on."""
    if hasattr(model, "peft_config"):  # never sharded (the trainer refuses LoRA under FSDP2/ZeRO-3)
        model.save_pretrained(path / ADAPTER_DIR)
        copy.deepcopy(model).merge_and_unload().save_pretrained(path)
    else:
        model.save_pretrained(path, state_dict=weights)
    generation = copy.deepcopy(model.generation_config)
    generation.update(**CHECKPOINT_SAMPLING_OFF)
    generation.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _write_legacy_rope(path / "config.json")


def _write_legacy_rope(config_file: Path) -> None:
    """Also write the RoPE settings as transformers 4 reads them (`rope_theta`, `rope_scaling`). Transformers 5
    writes only `rope_parameters`, and a reader on transformers 4 (a vLLM, TGI or SGLang that pins it) silently
    takes its default theta instead: 10,000 for Qwen2.5's 1,000,000 (measured with 4.57.1)."""
    config = json.loads(config_file.read_text())
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope:  # none, or one per layer type: left as it is
        return
    config.setdefault("rope_theta", rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        config.setdefault("rope_scaling", {k: v for k, v in rope.items() if k != "rope_theta"})
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
