"""Model and tokenizer for a run: the tiny built-from-config model, or any transformers checkpoint."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
from pathlib import Path

import torch

from ..errors import UserError
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
    return cfg.compute.bf16 if cfg.compute.bf16 is not None else device.type == "cuda"


def require_attention_kernels(cfg: TrainConfig) -> None:
    """flash_attention_2 needs the flash-attn package: one line before any weights load, not transformers' error
    after, and what sdpa costs instead (the update then pads each micro-batch to its longest row)."""
    if cfg.compute.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise UserError("compute.attn_implementation flash_attention_2 needs flash-attn (pip install flash-attn "
                        "--no-build-isolation, on a GPU); or --set compute.attn_implementation=sdpa, which pads each "
                        "update micro-batch to its longest row (logged per step: forward_tokens beside update_tokens)")


def build_tiny_model(cfg: TrainConfig, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    t = cfg.tiny_model
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                         num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                         num_key_value_heads=t.num_key_value_heads, max_position_embeddings=t.max_position_embeddings,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
                         attn_implementation=cfg.compute.attn_implementation)
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config)


def load_model(cfg: TrainConfig, weights: str | None = None, adapter: str | None = None,
               device: torch.device | None = None, shape_only: bool = False):
    """(model, tokenizer) on `device` (default: the best one). `weights` overrides where the weights come from;
    `shape_only`: none of them is read, the model is built from `weights`' config.json (and tokenizer) straight on
    `device`, its weights random: for a resume that fills every one from elsewhere (a sharded run's shards)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per checkpoint write would drown the run's own progress
    device = device or pick_device()
    source = weights or cfg.init_from or (None if cfg.model == "tiny" else cfg.model)
    config_only = source is not None and source.startswith(CONFIG_PREFIX)  # random weights, a real shape
    tokenizer_source = cfg.tokenizer or (None if config_only else source) or TINY_TOKENIZER
    tokenizer = load_tokenizer(tokenizer_source) if tokenizer_source == TINY_TOKENIZER else \
        from_pretrained(AutoTokenizer, tokenizer_source)
    # Trained weights stay fp32 (the master copy; bf16 compute comes from autocast or FSDP2/DeepSpeed): an
    # lr-5e-7 Adam step is ~100x smaller than a bf16 weight's rounding step. Frozen LoRA base weights
    # take no update, so they may stay bf16.
    dtype = torch.bfloat16 if cfg.lora.enabled and compute_bf16(cfg, device) else torch.float32
    if source is None:
        model = build_tiny_model(cfg, tokenizer).to(dtype)
    elif config_only or shape_only:
        from transformers import AutoConfig

        torch.manual_seed(cfg.seed)
        config = from_pretrained(AutoConfig, source.removeprefix(CONFIG_PREFIX))
        # Built on the device, a resumed model never passes whole through host memory (a 7B: 30 GB per process)
        with device if shape_only else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_config(config, dtype=dtype,
                                                     attn_implementation=cfg.compute.attn_implementation)
    else:
        model = from_pretrained(AutoModelForCausalLM, source, dtype=dtype,
                                attn_implementation=cfg.compute.attn_implementation)
    if cfg.lora.enabled:
        from peft import LoraConfig, PeftModel, get_peft_model

        if adapter:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                                                     lora_dropout=cfg.lora.dropout,
                                                     target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    if cfg.compute.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    install_logprob_forward(model, cfg.compute.logprob_chunk_tokens)
    return model.to(device), tokenizer


def save_model(model, tokenizer, path: Path, weights: dict[str, torch.Tensor] | None = None,
               bf16: bool = False) -> None:
    """An HF-format checkpoint every tool loads: full weights (LoRA merged in), plus the adapter if any.

    `weights`: the whole state dict of a sharded model, gathered (the model itself then holds shards).
    `bf16`: the weights written in bf16, half the bytes, config.json's dtype saying so (the adapter stays as
    trained); the trainer keeps its exact fp32 weights in its resumable state (checkpoint.py).
    Its generation_config.json keeps the end ids but none of the base checkpoint's sampling shaping
    (Qwen2.5-Coder-Instruct: repetition_penalty 1.1, top_k 20), which `vllm serve` and `generate` apply to
    every request that does not set them: served, the policy samples the distribution it was trained on."""
    if hasattr(model, "peft_config"):  # never sharded (the trainer refuses LoRA under FSDP2/ZeRO-3)
        model.save_pretrained(path / ADAPTER_DIR)
        merged = copy.deepcopy(model).merge_and_unload()
        (merged.to(torch.bfloat16) if bf16 else merged).save_pretrained(path)
    else:
        if bf16:
            weights = _cast(model.state_dict() if weights is None else weights, torch.bfloat16)
        model.save_pretrained(path, state_dict=weights)
    generation = copy.deepcopy(model.generation_config)
    generation.update(**CHECKPOINT_SAMPLING_OFF)
    generation.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if bf16:  # save_pretrained names the model's own dtype (fp32): loaders would upcast the bf16 file
        _set_config(path / "config.json", dtype="bfloat16")
    _write_legacy_rope(path / "config.json")


def _cast(weights: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """`weights` in `dtype`; names that shared one tensor (tied embeddings) still share one, written once."""
    cast: dict[tuple, torch.Tensor] = {}

    def one(tensor: torch.Tensor) -> torch.Tensor:
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key not in cast:
            cast[key] = tensor.detach().to(dtype)
        return cast[key]

    return {name: one(tensor) for name, tensor in weights.items()}


def _set_config(config_file: Path, **settings) -> None:
    config = json.loads(config_file.read_text())
    config.update(settings)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


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
