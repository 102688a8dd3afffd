"""The memory planner (`srl-agent train --dry-run`): hand-worked figures for a small shape, the engines'
split of the model state, and the CLI's verdict without loading any weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from srl_agent.train.config import TrainConfig
from srl_agent.train.plan import ModelShape, model_shape, plan_memory

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ModelShape(vocab=1000, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=16, tied=True)


def test_parameter_counts_match_the_models_transformers_builds():
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(ROOT / "configs" / "models" / "qwen2.5-coder-0.5b")
    assert model_shape(TrainConfig(model="config:configs/models/qwen2.5-coder-0.5b")).params == 494_032_768
    small = AutoConfig.for_model("qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    assert config.vocab_size == 151_936
    assert SHAPE.params == sum(p.numel() for p in AutoModelForCausalLM.from_config(small).parameters())


def test_hand_worked_plan_and_the_engines_split():
    cfg = TrainConfig(micro_batch_size=2, max_prompt_tokens=96, max_new_tokens=32, generation_batch_size=4,
                      logprob_chunk_tokens=16)
    p = SHAPE.params  # 2 x layer + 1000 x 64 tied embeddings + final norm
    ddp = plan_memory(cfg, SHAPE, 4, 1.0, "ddp").items
    expected = (4 * p / 1e9, 4 * p / 1e9, 8 * p / 1e9)
    assert (ddp["weights"], ddp["gradients"], ddp["optimizer"]) == pytest.approx(expected)
    fsdp = plan_memory(cfg, SHAPE, 4, 1.0, "fsdp2").items
    assert fsdp["optimizer"] == pytest.approx(ddp["optimizer"] / 4)
    assert fsdp["gathered layers"] == pytest.approx(2 * SHAPE.layer_params * 2 / 1e9)
    tokens = 2 * (96 + 32)
    assert ddp["activations"] == pytest.approx(tokens * 2 * 2 * (8 * 64 + 3 * 128) / 1e9)  # layers x bf16 x ...
    assert ddp["log-prob buffers"] == pytest.approx((tokens * 64 * 2 + 3 * 16 * 1000 * 4) / 1e9)
    # sequences x tokens x layers x kv heads x head dim x (fp32 key + bf16 value): fp32 weights under autocast
    assert ddp["rollout KV cache"] == pytest.approx(4 * 128 * 2 * 2 * 16 * (4 + 2) / 1e9)
    assert fsdp["rollout KV cache"] == pytest.approx(4 * 128 * 2 * 2 * 16 * (2 + 2) / 1e9)  # bf16 compute copies
    checkpointed = plan_memory(cfg, SHAPE, 4, 1.0, "ddp", gradient_checkpointing=True).items["activations"]
    assert checkpointed < ddp["activations"]
    lora = plan_memory(TrainConfig(lora=True, lora_r=4), SHAPE, 1, 1.0, "ddp").items
    assert lora["optimizer"] == pytest.approx(8 * SHAPE.lora_params(4, TrainConfig().lora_target_modules) / 1e9)


def test_dry_run_says_whether_the_paper_recipe_fits_without_loading_weights():
    def dry_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "srl_agent.cli", "train", "--config", "configs/swe-paper.yaml",
                               "--model", "config:configs/models/qwen2.5-coder-7b", "--dry-run", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    fits = dry_run("--gpus", "8", "--gpu-memory", "80")
    assert fits.returncode == 0, fits.stderr
    assert "7.62 B parameters" in fits.stderr and "fsdp2 on 8 x 80 GB" in fits.stderr and ": fits" in fits.stderr
    one = dry_run("--gpus", "1", "--gpu-memory", "80", "--engine", "ddp")
    assert one.returncode == 1 and "does NOT fit" in one.stderr and "--set lora=true" in one.stderr


def test_the_kl_reference_is_planned_as_the_trainer_holds_it(tmp_path):
    """kl_coef > 0: the trainer holds a frozen copy of the starting model, in fp32 and whole on every GPU (it is
    not sharded), 30 GB beside a 7B model, which the plan left out, calling runs that run out of memory fitting."""
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(tmp_path / "run"), "kl_coef": "0.1", "lora": "true", "bf16": "true",
                       "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}.items():
        cfg.set(key, value)
    reference = Trainer(cfg, log=lambda _: None).ref_model
    held = sum(p.numel() * p.element_size() for p in reference.parameters()) / 1e9
    for engine in ("ddp", "fsdp2"):
        assert plan_memory(cfg, model_shape(cfg), 8, 80, engine).items["reference (KL)"] == pytest.approx(held)
        assert "reference (KL)" not in plan_memory(TrainConfig(), SHAPE, 8, 80, engine).items


@pytest.mark.parametrize("lora", [False, True])
def test_the_rollout_kv_cache_is_planned_in_the_dtypes_generation_keeps(tmp_path, lora):
    """bf16 on one process or DDP: full fine-tuning generates with its fp32 weights under autocast, where the rotary
    embedding keeps the keys fp32 (the values are v_proj's bf16 output), 1.5x the all-bf16 cache the plan counted.
    A LoRA model's bf16 base keeps both in bf16. Measured on the trainer's own model, as its rollouts generate."""
    import torch

    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(tmp_path / "run"), "bf16": "true", "lora": str(lora).lower(),
                       "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}.items():
        cfg.set(key, value)
    trainer = Trainer(cfg, log=lambda _: None)
    ids = torch.tensor([[5, 6, 7, 8, 9]] * 3)
    out = trainer.unwrapped.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                                     do_sample=False, return_dict_in_generate=True)
    cached = [(layer.keys, layer.values) for layer in out.cache.layers]
    held = sum(t.numel() * t.element_size() for kv in cached for t in kv) / (3 * cached[0][0].shape[2])
    planned = plan_memory(cfg, model_shape(cfg), 1, 80, "ddp").items["rollout KV cache"] * 1e9 / (
        cfg.generation_batch_size * (cfg.max_prompt_tokens + cfg.max_new_tokens))
    assert held == pytest.approx(planned)  # bytes per cached token
