"""The memory planner (`srl-agent train --dry-run`): hand-worked figures for every term of the 0.5B and 7B shapes,
phase by phase, the bytes a layer saves and autocast's weight copies as measured, the engines' split of the model
state, the CLI's verdict without loading any weights, its refusal of a context longer than the model's positions
and its offline plan of a hub id whose shape ships in configs/models/."""

from __future__ import annotations

import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from srl_agent.errors import UserError
from srl_agent.train.config import TrainConfig
from srl_agent.train.plan import GENERATION, SAVE, UPDATE, ModelShape, model_shape, plan_memory

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ModelShape(vocab=1000, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=16, tied=True)
SHAPE_05B = ModelShape(vocab=151_936, hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, head_dim=64,
                       tied=True, max_positions=32_768)
SHAPE_7B = ModelShape(vocab=152_064, hidden=3584, intermediate=18_944, layers=28, heads=28, kv_heads=4, head_dim=128,
                      tied=False, max_positions=32_768)
PAPER = TrainConfig.from_yaml(ROOT / "configs" / "swe-paper.yaml")  # 4 x (8192 + 1024) tokens, generation 32, GC


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", "train", "--config", "configs/swe-paper.yaml",
                           "--dry-run", *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


def test_parameter_counts_match_the_models_transformers_builds():
    from transformers import AutoConfig, AutoModelForCausalLM

    for name, shape in (("qwen2.5-coder-0.5b", SHAPE_05B), ("qwen2.5-coder-7b", SHAPE_7B)):
        assert model_shape(TrainConfig(model=f"config:configs/models/{name}")) == shape
    assert SHAPE_05B.params == 494_032_768
    assert SHAPE_7B.params == 7_615_616_512
    small = AutoConfig.for_model("qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    assert SHAPE.params == sum(p.numel() for p in AutoModelForCausalLM.from_config(small).parameters())


# One decoder layer in bytes: 4 Q/K/V/O projections (Qwen2 has q/k/v biases), gate/up/down, two RMSNorms.
LAYER_05B = 896 * 64 * (2 * 14 + 2 * 2) + 64 * (14 + 2 * 2) + 3 * 896 * 4864 + 2 * 896  # 14,912,384 parameters
LAYER_7B = 3584 * 128 * (2 * 28 + 2 * 4) + 128 * (28 + 2 * 4) + 3 * 3584 * 18_944 + 2 * 3584  # 233,057,792
HEAD_05B, HEAD_7B = 151_936 * 896, 152_064 * 3584  # vocab x hidden: the tied 0.5B's one matrix; each of 7B's two
# Saved per token and layer (see ModelShape.saved_bytes): norms (fp32 input, output in the stream's dtype, fp32
# 1/RMS), projection inputs (norm outputs, cast per projection when the stream is fp32; the attention output),
# sdpa's q, k, v and fp32 log-sum-exp per head, the MLP's 4 x intermediate. bf16 stream, then fp32 (autocast).
SAVED_05B = 2 * (4 * 896 + 2 * 896 + 4) + (2 * 2 * 896 + 2 * 896) + (2 * (896 + 2 * 128) + 4 * 14) + 4 * 2 * 4864
SAVED_05B_FP32_STREAM = 2 * (4 * 896 + 4 * 896 + 4) + (5 * 2 * 896 + 2 * 896) + (2 * (896 + 2 * 128) + 4 * 14) + \
    4 * 2 * 4864
SAVED_7B = 2 * (4 * 3584 + 2 * 3584 + 4) + (2 * 2 * 3584 + 2 * 3584) + (2 * (3584 + 2 * 512) + 4 * 28) + \
    4 * 2 * 18_944
SAVED_7B_FP32_STREAM = 2 * (4 * 3584 + 4 * 3584 + 4) + (5 * 2 * 3584 + 2 * 3584) + (2 * (3584 + 2 * 512) + 4 * 28) + \
    4 * 2 * 18_944
TOKENS = 4 * (8192 + 1024)  # a micro-batch
CACHED = 16 * (8192 + 1024)  # the generation batch's KV cache, in tokens
PROMPTS = 16 * 8192  # one prefill over the generation batch's prompts


def gb(phases: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {phase: pytest.approx({term: b / 1e9 for term, b in terms.items()}) for phase, terms in phases.items()}


@pytest.mark.parametrize("shape, binding, expected", [
    (SHAPE_05B, UPDATE, {
        GENERATION: {"weights": 494_032_768 * 4 / 8, "optimizer": 494_032_768 * 8 / 8,
                     "gathered model": 494_032_768 * 2,  # bf16, whole for the sampling phase
                     "KV cache": CACHED * 24 * 2 * 64 * (2 + 2), "prefill": PROMPTS * 3 * 4864 * 2},
        UPDATE: {"weights": 494_032_768 * 4 / 8, "gradients": 494_032_768 * 4 / 8, "optimizer": 494_032_768 * 8 / 8,
                 "gathered layers": 2 * LAYER_05B * 2, "gathered head": HEAD_05B * 2,
                 "head reduce-scatter": HEAD_05B * (2 + 4),  # its bf16 gradient and the fp32 copy reduced
                 "activations": TOKENS * (24 * 896 * 2 + SAVED_05B),  # checkpointed: layer inputs, one layer
                 "log-prob buffers": TOKENS * 896 * 2 + 3 * 1024 * 151_936 * 4}}),
    (SHAPE_7B, GENERATION, {
        GENERATION: {"weights": 7_615_616_512 * 4 / 8, "optimizer": 7_615_616_512 * 8 / 8,
                     "gathered model": 7_615_616_512 * 2,  # 15.2 GB: bf16, whole for the sampling phase
                     "KV cache": CACHED * 28 * 4 * 128 * (2 + 2),  # 8.5 GB
                     "prefill": PROMPTS * 3 * 18_944 * 2},  # 14.9 GB
        UPDATE: {"weights": 7_615_616_512 * 4 / 8, "gradients": 7_615_616_512 * 4 / 8,
                 "optimizer": 7_615_616_512 * 8 / 8, "gathered layers": 2 * LAYER_7B * 2,
                 "gathered head": HEAD_7B * 2, "head reduce-scatter": HEAD_7B * (2 + 4),
                 "activations": TOKENS * (28 * 3584 * 2 + SAVED_7B),
                 "log-prob buffers": TOKENS * 3584 * 2 + 3 * 1024 * 152_064 * 4}}),
])
def test_each_term_of_the_paper_recipe_on_8_gpus_is_its_hand_computation(shape, binding, expected):
    """FSDP2 over 8 cards: 1/8 of the fp32 state; bf16 compute copies of the gathered units, stream and cache. The
    phases never meet: at 7B the whole gathered model, prefill and KV cache bind, at 0.5B the update's activations."""
    plan = plan_memory(PAPER, shape, 8, 80, "fsdp2")
    assert plan.phases == gb(expected)
    assert plan.binding == binding


@pytest.mark.parametrize("shape, expected", [
    (SHAPE_05B, {
        GENERATION: {"weights": 494_032_768 * 4, "optimizer": 494_032_768 * 8,
                     "autocast copies": (24 * (LAYER_05B - 2 * 896) + HEAD_05B) * 2,  # projections and the head
                     "KV cache": CACHED * 24 * 2 * 64 * (4 + 2),  # rotary's fp32 keys, bf16 values
                     "prefill": PROMPTS * 3 * 4864 * 2},
        UPDATE: {"weights": 494_032_768 * 4, "gradients": 494_032_768 * 4, "optimizer": 494_032_768 * 8,
                 "autocast copies": (24 * (LAYER_05B - 2 * 896) + HEAD_05B) * 2,
                 "activations": TOKENS * (24 * 896 * 4 + SAVED_05B_FP32_STREAM),  # the fp32 residual stream
                 "log-prob buffers": TOKENS * 896 * 4 + 3 * 1024 * 151_936 * 4}}),
    (SHAPE_7B, {
        GENERATION: {"weights": 7_615_616_512 * 4, "optimizer": 7_615_616_512 * 8,
                     "autocast copies": (28 * (LAYER_7B - 2 * 3584) + HEAD_7B) * 2,
                     "KV cache": CACHED * 28 * 4 * 128 * (4 + 2), "prefill": PROMPTS * 3 * 18_944 * 2},
        UPDATE: {"weights": 7_615_616_512 * 4, "gradients": 7_615_616_512 * 4, "optimizer": 7_615_616_512 * 8,
                 "autocast copies": (28 * (LAYER_7B - 2 * 3584) + HEAD_7B) * 2,
                 "activations": TOKENS * (28 * 3584 * 4 + SAVED_7B_FP32_STREAM),
                 "log-prob buffers": TOKENS * 3584 * 4 + 3 * 1024 * 152_064 * 4}}),
])
def test_each_term_of_unsharded_full_fine_tuning_is_its_hand_computation(shape, expected):
    """One process (or DDP): fp32 weights under autocast, which keeps bf16 copies and an fp32 residual stream."""
    plan = plan_memory(PAPER, shape, 1, 80, "ddp")
    assert plan.phases == gb(expected)


def test_a_lora_save_holds_a_second_copy_of_the_model():
    """configs/swe-1gpu.yaml: the base in bf16, rank-64 adapters; the save merges a deep copy of both."""
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "swe-1gpu.yaml")
    # A: in x r, B: r x out on q, k, v, o, gate, up, down of every layer
    adapters = 28 * 64 * ((3584 + 3584) + 2 * (3584 + 512) + (3584 + 3584) + 3 * (3584 + 18_944))
    assert SHAPE_7B.lora_params(64, cfg.lora.target_modules) == adapters == 161_480_704
    plan = plan_memory(cfg, SHAPE_7B, 1, 80, "ddp")
    model = 7_615_616_512 * 2 + adapters * 4
    assert plan.phases[SAVE] == gb({SAVE: {"weights": model, "optimizer": adapters * 8, "merged copy": model}})[SAVE]
    cached = 32 * (8192 + 1024)  # the recipe's generation batch of 32
    assert plan.phases[GENERATION]["KV cache"] == pytest.approx(cached * 28 * 4 * 128 * (2 + 2) / 1e9)  # bf16 base
    assert "autocast copies" not in plan.phases[UPDATE]  # the base is bf16 already


def test_continuous_batching_plans_its_paged_cache_its_prefill_slices_and_its_attention_mask():
    """hf_paged with sdpa: the cache in the weights' dtype (fp32), prefills of at most 4,096 tokens, and a mask of
    4,096 rows over the whole cache (plus those rows) in the weights' dtype."""
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "swe-paper.yaml")
    cfg.rollout.backend, cfg.compute.attn_implementation = "hf_paged", "sdpa"
    generation = plan_memory(cfg, SHAPE_05B, 1, 80, "ddp").phases[GENERATION]
    assert generation["KV cache"] == pytest.approx(CACHED * 24 * 2 * 64 * 2 * 4 / 1e9)
    assert generation["prefill"] == pytest.approx(4096 * 3 * 4864 * 2 / 1e9)
    assert generation["paged attention mask"] == pytest.approx(4096 * (CACHED + 4096) * 4 / 1e9)  # 2.5 GB
    cfg.compute.attn_implementation = "flash_attention_2"
    assert "paged attention mask" not in plan_memory(cfg, SHAPE_05B, 1, 80, "ddp").phases[GENERATION]


def test_the_engines_split_and_the_small_shape():
    cfg = TrainConfig.from_dict({"compute.micro_batch_size": 2, "data.max_prompt_tokens": 96,
                                 "rollout.max_new_tokens": 32, "rollout.generation_batch_size": 4,
                                 "compute.logprob_chunk_tokens": 16})
    p = SHAPE.params  # 2 x layer + 1000 x 64 tied embeddings + final norm
    ddp = plan_memory(cfg, SHAPE, 4, 1.0, "ddp").phases
    assert [ddp[UPDATE][t] for t in ("weights", "gradients", "optimizer")] == pytest.approx([4e-9 * p, 4e-9 * p,
                                                                                           8e-9 * p])
    assert "gradients" not in ddp[GENERATION]  # set to None after every optimizer step
    fsdp = plan_memory(cfg, SHAPE, 4, 1.0, "fsdp2").phases
    assert fsdp[UPDATE]["optimizer"] == pytest.approx(ddp[UPDATE]["optimizer"] / 4)
    tokens = 2 * (96 + 32)
    assert ddp[UPDATE]["activations"] == pytest.approx(tokens * 2 * SHAPE.saved_bytes(2, 4) / 1e9)  # 2 layers
    assert ddp[UPDATE]["log-prob buffers"] == pytest.approx((tokens * 64 * 4 + 3 * 16 * 1000 * 4) / 1e9)
    checkpointed = plan_memory(cfg, SHAPE, 4, 1.0, "ddp", gradient_checkpointing=True).phases[UPDATE]["activations"]
    assert checkpointed < ddp[UPDATE]["activations"]
    lora = plan_memory(TrainConfig.from_dict({"lora": {"enabled": True, "r": 4}}), SHAPE, 1, 1.0, "ddp").phases[UPDATE]
    assert lora["optimizer"] == pytest.approx(8 * SHAPE.lora_params(4, TrainConfig().lora.target_modules) / 1e9)


@pytest.mark.parametrize("dtype, autocast, compute_bytes, stream_bytes", [
    ("bfloat16", False, 2, 2),  # bf16 weights: FSDP2's compute copies, a LoRA model's base
    ("float32", True, 2, 4),  # fp32 weights under autocast: one process or DDP, full fine-tuning
    ("float32", False, 4, 4),  # fp32 throughout (CPU)
])
def test_saved_bytes_are_what_a_decoder_layer_keeps_for_its_backward(dtype, autocast, compute_bytes, stream_bytes):
    """Every tensor autograd saves in a forward, by storage, for a 2-layer minus a 1-layer model (the embedding,
    final norm and rotary tables cancel), weights and autocast's copies of them left out; per token."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokens = 40  # no weight dimension: weights and their copies are told apart by shape

    def saved(layers: int) -> int:
        config = AutoConfig.for_model("qwen2", vocab_size=1000, hidden_size=64, intermediate_size=352,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2)
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation="sdpa")
        weight_shapes = {s for p in model.parameters() for s in (tuple(p.shape), tuple(p.shape)[::-1])}
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if tuple(t.shape) not in weight_shapes:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model.model(input_ids=torch.randint(0, 1000, (1, tokens)), use_cache=False)
        return sum(storages.values())

    shape = ModelShape(vocab=1000, hidden=64, intermediate=352, layers=1, heads=4, kv_heads=2, head_dim=16, tied=True)
    assert (saved(2) - saved(1)) / tokens == shape.saved_bytes(compute_bytes, stream_bytes)


def test_autocast_keeps_a_bf16_copy_of_every_weight_a_forward_uses(tmp_path):
    """Full fine-tuning on one process in bf16: the model's fp32 weights run under autocast, which caches the bf16
    copy of each weight it casts until the forward ends. Counted at the end of every forward of a generation with
    the trainer's own model, as its rollouts generate."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(tmp_path / "run"), "compute.bf16": "true",
                       "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}.items():
        cfg.set(key, value)
    model = Trainer(cfg, log=lambda _: None).unwrapped
    weights = {p.data_ptr() for p in model.parameters()}
    copies: list[weakref.ref] = []

    class WeightCopies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten._to_copy.default and args[0].data_ptr() in weights:
                copies.append(weakref.ref(out))
            return out

    alive: list[int] = []
    model.get_output_embeddings().register_forward_hook(  # the head: the last op of a forward, inside autocast
        lambda *_: alive.append(sum(t.numel() * t.element_size() for t in (c() for c in copies) if t is not None)))
    ids = torch.tensor([[5, 6, 7, 8, 9]] * 3)
    with WeightCopies():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
    planned = plan_memory(cfg, model_shape(cfg), 1, 80, "ddp").phases[GENERATION]["autocast copies"]
    assert alive == [pytest.approx(planned * 1e9)] * 3  # the prefill and two decode steps


def test_dry_run_says_whether_the_paper_recipe_fits_without_loading_weights():
    fits = cli("--model", "config:configs/models/qwen2.5-coder-7b", "--gpus", "8", "--gpu-memory", "80")
    assert fits.returncode == 0, fits.stderr
    assert "7.62 B parameters" in fits.stderr and "fsdp2 on 8 x 80 GB" in fits.stderr and ": fits" in fits.stderr
    rows = {line.split()[0]: line.split()[1:] for line in fits.stderr.splitlines() if line.startswith("  ")}
    assert rows["GB"] == ["generation", "update"] and rows["prefill"] == ["14.90", "-"]
    assert "binding phase: generation" in fits.stderr
    one = cli("--model", "config:configs/models/qwen2.5-coder-7b", "--gpus", "1", "--gpu-memory", "80",
              "--strategy", "ddp")
    assert one.returncode == 1 and "does NOT fit" in one.stderr and "--set lora.enabled=true" in one.stderr


def test_dry_run_plans_a_hub_id_with_a_shipped_shape_offline():
    """configs/swe-paper.yaml names Qwen/Qwen2.5-Coder-7B-Instruct, whose shape configs/models/ holds: the plan reads
    it there and never asks the hub (here one that refuses every connection)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    run = cli("--gpus", "8", "--gpu-memory", "80", env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert run.returncode == 0, run.stderr
    assert "7.62 B parameters" in run.stderr and "binding phase: generation" in run.stderr


def test_a_context_longer_than_the_models_positions_is_refused_in_one_line():
    """32,000 + 1,024 tokens > the 7B shape's 32,768 positions: refused before any weights load, naming both numbers
    and the settings to change."""
    cfg = TrainConfig.from_dict({"data.max_prompt_tokens": 32_000, "rollout.max_new_tokens": 1024})
    with pytest.raises(UserError, match=r"data\.max_prompt_tokens 32000 \+ rollout\.max_new_tokens 1024 = 33024 tokens "
                                        r"exceed the model's max_position_embeddings 32768"):
        plan_memory(cfg, SHAPE_7B, 8, 80, "fsdp2")
    run = cli("--model", "config:configs/models/qwen2.5-coder-7b", "--set", "data.max_prompt_tokens=32000")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "33024" in run.stderr and "32768" in run.stderr and "max_new_tokens" in run.stderr
    fits = TrainConfig.from_dict({"data.max_prompt_tokens": 31_744, "rollout.max_new_tokens": 1024})
    plan_memory(fits, SHAPE_7B, 8, 80, "fsdp2")  # 32,768: fits


@pytest.mark.parametrize("lora", [False, True])
def test_the_kl_reference_is_planned_as_the_trainer_holds_it(tmp_path, lora):
    """kl_coef > 0: in full fine-tuning the trainer holds a frozen copy of the starting model in the compute dtype,
    whole on every GPU (it is not sharded), 15 GB beside a 7B model; LoRA's reference is its own base with the
    adapter off, which costs nothing."""
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(tmp_path / "run"), "grpo.kl_coef": "0.1", "lora.enabled": str(lora).lower(),
                       "compute.bf16": "true", "tiny_model.hidden_size": "32",
                       "tiny_model.intermediate_size": "64"}.items():
        cfg.set(key, value)
    reference = Trainer(cfg, log=lambda _: None).ref_model
    held = sum(p.numel() * p.element_size() for p in reference.parameters()) / 1e9 if reference else 0.0
    assert (held == 0) == lora
    for engine in ("ddp", "fsdp2"):
        for phase in plan_memory(cfg, model_shape(cfg), 8, 80, engine).phases.values():
            assert phase.get("reference (KL)", 0.0) == pytest.approx(held)
        assert "reference (KL)" not in plan_memory(TrainConfig(), SHAPE, 8, 80, engine).phases[UPDATE]


@pytest.mark.parametrize("lora", [False, True])
def test_the_rollout_kv_cache_is_planned_in_the_dtypes_generation_keeps(tmp_path, lora):
    """bf16 on one process or DDP: full fine-tuning generates with its fp32 weights under autocast, where the rotary
    embedding keeps the keys fp32 (the values are v_proj's bf16 output), 1.5x the all-bf16 cache the plan counted.
    A LoRA model's bf16 base keeps both in bf16. Measured on the trainer's own model, as its rollouts generate."""
    import torch

    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(tmp_path / "run"), "compute.bf16": "true", "lora.enabled": str(lora).lower(),
                       "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}.items():
        cfg.set(key, value)
    trainer = Trainer(cfg, log=lambda _: None)
    ids = torch.tensor([[5, 6, 7, 8, 9]] * 3)
    out = trainer.unwrapped.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                                     do_sample=False, return_dict_in_generate=True)
    cached = [(layer.keys, layer.values) for layer in out.cache.layers]
    held = sum(t.numel() * t.element_size() for kv in cached for t in kv) / (3 * cached[0][0].shape[2])
    planned = plan_memory(cfg, model_shape(cfg), 1, 80, "ddp").phases[GENERATION]["KV cache"] * 1e9 / (
        cfg.rollout.generation_batch_size * (cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens))
    assert held == pytest.approx(planned)  # bytes per cached token
