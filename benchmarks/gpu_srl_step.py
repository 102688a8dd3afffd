"""SRL training speed on one GPU, side by side with TRL's GRPOTrainer on the same workload.

Models: Qwen2.5-Coder-shaped configs shipped in configs/models/ (0.5B, 1.5B), random weights, the
shipped tokenizer: the real compute and memory, no hub. Data: SRL step examples from the fixture
trajectories in ../shared, prompts cut to --prompt-tokens, G = 8 completions of up to
--completion-tokens each. A random model rarely ends a completion early, so both trainers generate
(almost) the full length: the same work on both sides.

Each side runs in its own process, in this order:
1. rollout: generation alone with each of transformers' KV caches (dynamic; static, which transformers compiles
   on CUDA; paged, its continuous batching; policy/hf.py), tokens/s side by side.
2. ours (srl_agent.train.Trainer), the whole SRL step: bf16, gradient checkpointing, vLLM rollouts when vllm
   imports (else the fastest of those caches, `--rollout-backend` to choose), padding-free updates with
   flash-attention when it is installed. Generation and update tokens/s, update MFU (6 x parameters x tokens
   against the card's dense bf16 peak), peak memory beside `train --dry-run`'s plan, SRL examples/s.
3. layouts: the update alone per layout (padded, shared_prefix, and padding_free with flash-attention), with
   gradient checkpointing off and on: tokens/s, MFU, peak memory.
4. fsdp2: our step again under `accelerate launch` with configs/accelerate/fsdp2.yaml and one process, its peak
   memory beside the plan for FSDP2.
5. trl: GRPOTrainer with our reward function (`srl_agent.reward.TRLRewardFunction`), the same model, prompts,
   batch and lengths; its examples/s and the ratio. Where it cannot run, on the anchor workload and card the
   ratio is taken against TRL's measured anchor (TRL_ANCHOR).
Targets: >= 3x TRL's examples/s, update MFU >= 40 %, generation >= 5x 772 tokens/s.

The sides share `--budget-s` of wall-clock time (each a share of what is left; a side measures fewer steps to
keep to it, is skipped when too little is left, or is stopped when far past it). results.json is rewritten after
every side, and a side that fails is recorded and the rest still run: a device run has one try.

    python benchmarks/gpu_srl_step.py --model 0.5b [--batch 16] [--steps 3] [--out DIR]   # DIR/results.json, log.txt
    python benchmarks/gpu_srl_step.py --smoke --no-trl  # the script itself on CPU: tiny model, short lengths
    bash benchmarks/gpu_prepare.sh; bash benchmarks/gpu_run.sh   # the device run: wheels and fixtures in .carry/
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch
from _common import FIXTURES, machine

from srl_agent.jsonio import atomic_writer
from srl_agent.policy.hf import BACKEND_CACHES
from srl_agent.train.config import TrainConfig
from srl_agent.train.grpo import Group, RolloutBatch
from srl_agent.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FSDP2_CONFIG = ROOT / "configs" / "accelerate" / "fsdp2.yaml"
# Each side's share of the time budget (of what is left when it starts), and the limits around it. The order is the
# order they run in: the checks first, since a first run on a card must not spend its time before reaching them.
SHARES = {"untied_fsdp2": 3, "recipe_7b": 4, "rollout": 3, "ours": 3, "layouts": 2, "fsdp2": 2, "trl": 3,
          "trl_bf16": 2}
LAUNCHED = {"untied_fsdp2", "fsdp2"}  # under `accelerate launch` with FSDP2_CONFIG and one process
MIN_SIDE_S = 20  # a side that would start with less left is skipped
SIDE_GRACE_S = 120  # a side still running this long past its share is stopped (warm-up and one step may overrun it)
KILL_AFTER_BUDGET_S = 30  # and any side still running this long past the whole budget
STOP_GRACE_S = 15  # between the SIGTERM that stops a side and the SIGKILL
ROLLOUT_BACKENDS = {cache: backend for backend, cache in BACKEND_CACHES.items()}  # each cache measured: who samples
# TRL 1.16 GRPOTrainer on this workload on an H200 (../shared/docs/performance-anchors.md, 2026-11-26): median
# 9.8 s per step of 8 prompts, the model's weights in bf16. The ratio's baseline beside the side-by-side ones.
TRL_ANCHOR = {"card": "H200", "model": "0.5b", "batch": 8, "group": 8, "prompt_tokens": 1024,
              "completion_tokens": 256, "examples_per_s": 0.82, "precision": "bfloat16 weights, bfloat16 compute"}
MODELS = {"0.5b": ROOT / "configs" / "models" / "qwen2.5-coder-0.5b",
          "1.5b": ROOT / "configs" / "models" / "qwen2.5-coder-1.5b"}
SEVEN_B = ROOT / "configs" / "models" / "qwen2.5-coder-7b"  # untied LM head, vocabulary 152,064
ONE_GPU_RECIPE, PAPER_RECIPE = ROOT / "configs" / "swe-1gpu.yaml", ROOT / "configs" / "swe-paper.yaml"
UNTIED_LAYERS = 2  # of the 7B's 28: its head and vocabulary, a fraction of its weights
UNTIED_BATCH = 2  # prompts per step of the untied check
UNTIED_STEPS = 2  # GRPO steps of the untied check, then its save
# CPU-sized widths of a shape for --smoke (its vocabulary and untied head kept)
SMOKE_SHAPE = {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2}
SMOKE_RECIPE_PROMPT_TOKENS = 64
LIBRARIES = ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "flash-attn", "vllm")
# Dense bf16 peak of the cards this runs on (tensor cores, no sparsity), in FLOP/s.
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def card_peak() -> tuple[str, float | None]:
    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def versions() -> dict[str, str | None]:
    """The versions of the libraries the sides import (None: not installed), as found on this process's path, which
    the sides share (gpu_run.sh puts the carried wheels first on it)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def matmul_params(model) -> tuple[int, int]:
    """(decoder, head): the parameters doing matmul work on every token the decoder runs on (all but the input
    embedding, a lookup, and the LM head), and the LM head's, which the update runs on the scored tokens only
    (train/logprobs.py). A head tied to the embedding is counted once, as the head."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model
    embedding, head = causal_lm.get_input_embeddings().weight, causal_lm.get_output_embeddings().weight
    total = sum(p.numel() for p in causal_lm.parameters())
    return total - embedding.numel() - (0 if head is embedding else head.numel()), head.numel()


def update_flops(model, forward_tokens: int, scored_tokens: int) -> int:
    """Model FLOPs of an update: 2 per weight and token forward, 4 backward, the decoder on every token it runs
    on and the LM head on the scored ones. Attention's own FLOPs and recomputation (gradient checkpointing, the
    log-prob chunks) are not counted."""
    decoder, head = matmul_params(model)
    return 6 * (decoder * forward_tokens + head * scored_tokens)


def precision(model, bf16_compute: bool) -> dict[str, str]:
    """The dtype a side keeps its weights in and the one it computes in, and the label its ratios carry."""
    weights = str(next(model.parameters()).dtype).removeprefix("torch.")
    compute = "bfloat16" if bf16_compute else weights
    return {"weights_dtype": weights, "compute_dtype": compute, "precision": f"{weights} weights, {compute} compute"}


def building_device() -> torch.device:
    """Where a side builds its random model: on the GPU when there is one, since a 7B's random initialisation on the
    CPU takes minutes (torch's CPU normal_ runs on one core: 47 s for 1.3 B bf16 parameters on the 2-core machine)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def config_for(args: argparse.Namespace, out: str) -> TrainConfig:
    cuda = torch.cuda.is_available()
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    return TrainConfig.from_dict({
        "method": "srl", "model": "tiny" if args.smoke else f"config:{MODELS[args.model]}",
        "data.trajectories": [args.trajectories], "output_dir": out, "seed": 0, "sft_warmup.steps": 0,
        "grpo.dynamic_sampling": False,  # a random model: every group flat
        "batch_size": args.batch, "grpo.group_size": args.group, "rollout.max_new_tokens": args.completion_tokens,
        "data.max_prompt_tokens": args.prompt_tokens, "rollout.temperature": 1.0, "optim.lr": 1e-6,
        "compute.micro_batch_size": args.micro_batch, "rollout.generation_batch_size": args.batch * args.group,
        "max_steps": 10**6, "validation.every": 10**6, "checkpointing.every": 10**6, "validation.trajectories": 1,
        "validation.examples": 1, "compute.bf16": cuda, "compute.update_layout": args.update_layout,
        "compute.gradient_checkpointing": cuda and args.update_layout != "shared_prefix",  # which needs the KV cache
        "compute.attn_implementation": "flash_attention_2" if flash else "sdpa",
        "rollout.backend": args.rollout_backend})


def seven_b_shape(folder: Path, smoke: bool, layers: int | None = None) -> str:
    """A `config:` model source with the 7B's shape (untied head, vocabulary 152,064), written into `folder`:
    `layers` of its decoder layers (default all), or with `smoke` CPU-sized widths."""
    config = json.loads((SEVEN_B / "config.json").read_text())
    config |= ({"num_hidden_layers": layers} if layers else {}) | (SMOKE_SHAPE if smoke else {})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return f"config:{folder}"


def write_json(path: str, data: dict) -> None:
    with atomic_writer(Path(path)) as f:
        f.write(json.dumps(data))


def measured(steps: int, deadline: float | None):
    """Up to `steps` timed repetitions; once the side's share of the time budget is spent, no more than one."""
    for i in range(steps):
        if i and deadline and time.time() > deadline:
            return
        yield i


def share_of(deadline: float | None, parts_left: int) -> float | None:
    """The end of the next of `parts_left` equal parts of the time until `deadline` (None: no budget)."""
    return None if deadline is None else time.time() + max(0.0, deadline - time.time()) / parts_left


def gib(num_bytes: float) -> float:
    return num_bytes / 2**30


def peak_gib() -> dict[str, float | None]:
    """The GPU memory peaks since the last reset: allocated (tensors) and reserved (the allocator's, what runs out)."""
    if not torch.cuda.is_available():
        return {"peak_memory_gib": None, "peak_reserved_gib": None}
    return {"peak_memory_gib": gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gib": gib(torch.cuda.max_memory_reserved())}


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def plan_beside(cfg: TrainConfig, engine: str) -> dict:
    """What `srl-agent train --dry-run` plans for this run on this card alone under `engine` (ddp: one process as
    it is; fsdp2: sharded over one process), in GiB like the measured peaks: the run's peak (its largest phase's),
    each phase's peak and its terms."""
    from srl_agent.train.plan import GB, model_shape, plan_memory

    card_gb = torch.cuda.get_device_properties(0).total_memory / GB if torch.cuda.is_available() else 80.0
    plan = plan_memory(cfg, model_shape(cfg), 1, card_gb, engine)
    return {"card_gib": gib(card_gb * GB), "planned_memory_gib": gib(plan.peak * GB),
            "planned_phases_gib": {phase: gib(peak * GB) for phase, peak in plan.peaks.items()},
            "planned_terms_gib": {phase: {term: gib(gb * GB) for term, gb in terms.items()}
                                  for phase, terms in plan.phases.items()}}


def measure_ours(args: argparse.Namespace) -> dict[str, float]:
    """Our whole SRL step: one process, or (side fsdp2, under accelerate launch) FSDP2 over one process."""
    from srl_agent.train.distributed import engine_name
    from srl_agent.train.model import compute_bf16

    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        cfg = config_for(args, out)
        trainer = Trainer(cfg, log=lambda _: None)
        params = sum(p.numel() for p in trainer.model.parameters())
        dtypes = precision(trainer.unwrapped, compute_bf16(cfg, trainer.device))
        trainer.train_step()  # warm-up: allocations, kernels, vLLM graphs
        reset_peak()
        rows = [trainer.train_step() for _ in measured(args.steps, args.deadline)]
        memory = peak_gib()
        planned = plan_beside(cfg, "fsdp2" if trainer.sharded else "ddp")
        trainer.accelerator.end_training()
    seconds = sum(r["seconds"] for r in rows)
    generate = sum(r["time_generate"] for r in rows)
    update = sum(r["time_update"] for r in rows)
    gen_tokens = sum(r.get("completion_tokens", 0) for r in rows)
    forward = sum(r.get("forward_tokens", 0) for r in rows)  # what the layout runs (a shared prompt once)
    scored = cfg.grpo.ppo_epochs * sum(r.get("update_tokens", 0) for r in rows)
    _, peak = card_peak()
    flops = update_flops(trainer.unwrapped, forward, scored)
    return {"params": params, "engine": engine_name(trainer.accelerator), "backend": cfg.rollout.backend,
            "attention": cfg.compute.attn_implementation, "steps": len(rows), **dtypes,
            "examples_per_s": sum(len(r["batch"]) for r in rows) / seconds,
            "generation_tokens_per_s": gen_tokens / generate if generate else 0.0,
            "update_tokens_per_s": forward / update if update else 0.0,
            "update_mfu": flops / update / peak if peak and update else None,
            "generate_share": generate / seconds, "update_share": update / seconds, **memory, **planned}


def position_rewards(group: int):
    """A reward function by each completion's place in its group of `group`: no group is flat, so every step reaches
    the GRPO update (tests/distributed_worker.py does the same)."""
    def rewards(texts, *_, **__) -> list[float]:
        return [(i % group) / group for i in range(len(texts))]
    return rewards


def measure_untied_fsdp2(args: argparse.Namespace) -> dict:
    """Check 1: `Trainer.run` for two GRPO steps and its save, under FSDP2 (this side runs under accelerate launch
    with one process), on the 7B's shape cut to UNTIED_LAYERS layers: the untied LM head that FSDP2 keeps in its
    root unit, log-probs in chunks of a quarter of a completion (at least 3 per micro-batch). What it measured is
    written after each step, so a crash in the second step or in the save keeps the first."""
    from srl_agent.train import trainer as trainer_module
    from srl_agent.train.distributed import engine_name

    trainer_module.srl_rewards = position_rewards(args.group)
    with tempfile.TemporaryDirectory(prefix="srl-gpu-untied-") as tmp:
        cfg = config_for(args, str(Path(tmp) / "run")).updated({
            "model": seven_b_shape(Path(tmp) / "shape", args.smoke, UNTIED_LAYERS), "batch_size": UNTIED_BATCH,
            "rollout.generation_batch_size": UNTIED_BATCH * args.group, "rollout.backend": "hf",
            "compute.logprob_chunk_tokens": max(1, args.completion_tokens // 4), "max_steps": UNTIED_STEPS,
            "checkpointing.every": UNTIED_STEPS, "validation.trajectories": 0})
        start = time.perf_counter()
        with building_device():
            trainer = Trainer(cfg, log=lambda _: None)
        model = trainer.unwrapped
        head = model.get_output_embeddings()
        result: dict = {"engine": engine_name(trainer.accelerator), "layers": model.config.num_hidden_layers,
                        "vocab": head.weight.shape[0], "tied": head.weight is model.get_input_embeddings().weight,
                        "logprob_chunk_tokens": cfg.compute.logprob_chunk_tokens,
                        "load_seconds": time.perf_counter() - start,
                        "steps": 0, "updates": 0, "step_seconds": [], "grad_norms": [],
                        "logprob_chunks_per_micro_batch": [], "saved": False}
        write_json(args.json, result)
        grpo_update = trainer.grpo_update

        def counted_update(batch, *a, **k):  # the log-prob chunks of each micro-batch, as chunked_logprobs cuts them
            result["logprob_chunks_per_micro_batch"].append(
                [math.ceil(micro.scored_tokens() / cfg.compute.logprob_chunk_tokens)
                 for micro in batch.micro_batches(cfg.compute.micro_batch_size, trainer.layout)])
            return grpo_update(batch, *a, **k)

        trainer.grpo_update = counted_update
        done = [time.perf_counter()]

        def on_step(row: dict) -> None:  # after the step, and after its save when it saves
            done.append(time.perf_counter())
            updated = bool(row.get("forward_tokens")) and math.isfinite(row["grad_norm"]) and row["grad_norm"] > 0
            result.update(steps=result["steps"] + 1, updates=result["updates"] + updated)
            result["step_seconds"].append(row["seconds"])
            result["grad_norms"].append(row.get("grad_norm"))
            write_json(args.json, result)

        latest = trainer.run(on_step)["latest"]
        result["save_seconds"] = done[-1] - done[-2] - result["step_seconds"][-1]
        result["saved"] = any(Path(latest).glob("*.safetensors"))
    return result


def recipe_config(args: argparse.Namespace, tmp: Path) -> TrainConfig:
    """configs/swe-1gpu.yaml (the 7B on one card: LoRA on a bf16 base) at configs/swe-paper.yaml's prompt and
    completion lengths and group size, the 7B's shape with random weights; with --smoke, CPU-sized."""
    cfg = TrainConfig.from_yaml(ONE_GPU_RECIPE)
    paper = TrainConfig.from_yaml(PAPER_RECIPE)
    cfg.data.max_prompt_tokens, cfg.rollout.max_new_tokens = paper.data.max_prompt_tokens, paper.rollout.max_new_tokens
    cfg.grpo.group_size = paper.grpo.group_size
    cfg.model, cfg.data.trajectories = seven_b_shape(tmp / "shape", args.smoke), [args.trajectories]
    cfg.output_dir, cfg.validation.trajectories, cfg.compute.bf16 = str(tmp / "run"), 0, torch.cuda.is_available()
    cfg.rollout.backend = "hf"
    if args.smoke:
        cfg.data.max_prompt_tokens, cfg.rollout.max_new_tokens = SMOKE_RECIPE_PROMPT_TOKENS, args.completion_tokens
    return cfg


def measure_recipe_7b(args: argparse.Namespace) -> dict:
    """Check 2: the recipe's phases at their full lengths. Generation: generation_batch_size sequences (the most one
    call samples) from prompts of max_prompt_tokens random ids, max_new_tokens each; its time to the first token
    (prefill) and ms per decoded token (every decode step, timed at the decoder's end). Update: one GRPO update of
    a group, rewards all different. Each phase's peak memory, beside the plan."""
    from srl_agent.policy import SamplingParams
    from srl_agent.train.batching import micro_batches
    from srl_agent.train.plan import GENERATION, UPDATE

    with tempfile.TemporaryDirectory(prefix="srl-gpu-recipe-") as tmp:
        cfg = recipe_config(args, Path(tmp))
        start = time.perf_counter()
        # measured against the plan, not refused by it; its examples are not used (the prompts are random ids of
        # max_prompt_tokens), so none is dropped for its length
        with building_device():
            trainer = Trainer(cfg.updated({"data.max_prompt_tokens": None}), log=lambda _: None,
                              check_memory=False)
        load_seconds = time.perf_counter() - start
        model = trainer.unwrapped
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        group, sequences = cfg.grpo.group_size, max(cfg.grpo.group_size, cfg.rollout.generation_batch_size)
        # ids of the shipped tokenizer (the model's vocabulary is the 7B's larger one)
        prompts = torch.randint(len(trainer.tokenizer), (sequences // group, cfg.data.max_prompt_tokens),
                                generator=torch.Generator().manual_seed(0)).tolist()
        params = SamplingParams(group, cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.max_new_tokens)
        cuda = torch.cuda.is_available()
        stamps: list[float] = []

        def stamp(*_) -> None:  # once per forward: the prefill, then every decode step
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        hook = causal_lm.get_decoder().register_forward_hook(stamp)
        reset_peak()
        generation_start = time.perf_counter()
        with trainer.sampling_phase():
            groups = trainer.rollout.generate_ids(prompts, params, with_logprobs=False,
                                                  max_sequences=cfg.rollout.generation_batch_size)
        generation_seconds = time.perf_counter() - generation_start
        hook.remove()
        generation = peak_gib()
        completions = [c.token_ids for c in groups[0]]
        rows = [(prompts[0], c) for c in completions]
        reset_peak()
        start = time.perf_counter()
        batch = RolloutBatch.from_groups([Group(rows, [i / group for i in range(group)])], cfg.grpo.std_eps)
        row = trainer.grpo_update(batch, cfg.rollout.temperature)
        if cuda:
            torch.cuda.synchronize()
        update_seconds = time.perf_counter() - start
        update = peak_gib()
        planned = plan_beside(cfg, "ddp")
        trainer.accelerator.end_training()
    return {"params": sum(p.numel() for p in model.parameters()), "lora_r": cfg.lora.r,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "layers": causal_lm.config.num_hidden_layers, "attention": cfg.compute.attn_implementation,
            "layout": trainer.layout, "gradient_checkpointing": cfg.compute.gradient_checkpointing,
            **precision(model, cfg.compute.bf16), "load_seconds": load_seconds,
            "prompt_tokens": cfg.data.max_prompt_tokens,
            "max_new_tokens": cfg.rollout.max_new_tokens,
            "group": group, "generation_sequences": sequences,
            "generated_tokens": max(len(c.token_ids) for g in groups for c in g),
            "generation_seconds": generation_seconds, "prefill_seconds": stamps[0] - generation_start,
            "decode_ms_per_token": 1000 * (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1),
            "generation_peak_memory_gib": generation["peak_memory_gib"],
            "generation_peak_reserved_gib": generation["peak_reserved_gib"],
            "generation_planned_gib": planned["planned_phases_gib"][GENERATION],
            "update_seconds": update_seconds, "update_sequences": len(rows),
            "update_micro_batch_rows": max(len(c) for c in micro_batches(rows, cfg.compute.micro_batch_size,
                                                                         trainer.layout)),
            "micro_batch_size": cfg.compute.micro_batch_size, "update_forward_tokens": row["forward_tokens"],
            "update_peak_memory_gib": update["peak_memory_gib"],
            "update_peak_reserved_gib": update["peak_reserved_gib"],
            "update_planned_gib": planned["planned_phases_gib"][UPDATE], **planned}


def measure_rollout(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Generation alone, per transformers KV cache (policy/hf.py; paged: continuous batching): the step's prompts,
    G samples each, at the step's lengths; one warm-up call, then `--steps` timed calls. The static cache warms up
    at the full length (its shapes: on CUDA it compiles there), the others on 16 new tokens. A cache that fails is
    recorded as {"error": ...} and the others still measured."""
    from srl_agent.policy import SamplingParams
    from srl_agent.policy.hf import HFPolicy

    results = {}
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        trainer = Trainer(config_for(args, out), log=lambda _: None)
        prompts = [trainer.prompt_ids(ex) for ex in trainer.stream.take(args.batch)]
        params = SamplingParams(n=args.group, temperature=1.0, max_new_tokens=args.completion_tokens)
        caches = tuple(ROLLOUT_BACKENDS)
        for i, cache in enumerate(caches):
            until = share_of(args.deadline, len(caches) - i)
            policy = HFPolicy(trainer.unwrapped, trainer.tokenizer, trainer.device, cache=cache)
            try:
                warm_up = params if cache == "static" else dataclasses.replace(params, max_new_tokens=16)
                policy.generate_ids(prompts, warm_up, with_logprobs=False)
                tokens, start = 0, time.perf_counter()
                for _ in measured(args.steps, until):
                    tokens += sum(len(c.token_ids) for g in policy.generate_ids(prompts, params, with_logprobs=False)
                                  for c in g)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                results[cache] = {"tokens_per_s": tokens / (time.perf_counter() - start)}
            except Exception as e:  # one engine's failure must not lose the others' numbers
                results[cache] = {"error": f"{type(e).__name__}: {e}"[:500]}
    return results


def measure_layouts(args: argparse.Namespace) -> dict[str, dict[str, float | None]]:
    """The update alone, per layout (train/batching.py) with gradient checkpointing on and off: one batch of
    rollouts, then per setting a warm-up update and `--steps` timed ones; forward tokens/s, MFU, peak memory."""
    results: dict[str, dict[str, float | None]] = {}
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        trainer = Trainer(config_for(args, out), log=lambda _: None)
        rollouts, _ = trainer.fill_batch({"generate": 0.0, "reward": 0.0, "update": 0.0})
        batch = RolloutBatch.from_groups([r.group() for r in rollouts], trainer.cfg.grpo.std_eps)
        layouts = ["padded", "shared_prefix", *(["padding_free"] if trainer.cfg.compute.attn_implementation ==
                                                 "flash_attention_2" else [])]
        # checkpointing drops the KV cache shared_prefix shares
        settings = [(layout, checkpointing) for layout in layouts for checkpointing in (False, True)
                    if not (layout == "shared_prefix" and checkpointing)]
        _, peak = card_peak()
        for i, (layout, checkpointing) in enumerate(settings):
            until = share_of(args.deadline, len(settings) - i)
            trainer.layout = layout
            if checkpointing:
                trainer.unwrapped.gradient_checkpointing_enable()
            else:
                trainer.unwrapped.gradient_checkpointing_disable()
            trainer.grpo_update(batch, 1.0)  # warm-up
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            rows = [trainer.grpo_update(batch, 1.0) for _ in measured(args.steps, until)]
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            forward = sum(r["forward_tokens"] for r in rows)
            flops = update_flops(trainer.unwrapped, forward, sum(r["update_tokens"] for r in rows))
            results[layout + (" + checkpointing" if checkpointing else "")] = {
                "tokens_per_s": forward / seconds, "mfu": flops / seconds / peak if peak else None,
                "peak_memory_gib": peak_gib()["peak_memory_gib"]}
    return results


def trl_workload(cfg: TrainConfig, tokenizer, count: int):
    """TRL's dataset rows and our reward's settings for it: the first `count` prompts our trainer takes, in its
    order, each as the very text our trainer tokenizes (its chat template with the example's tool schemas; TRL would
    render a conversational prompt with its own `tools` argument only, so none), with the columns our reward reads:
    the expert's call and the tools the prompt offers."""
    from srl_agent.chat import render_prompt
    from srl_agent.reward import SRLRewardConfig
    from srl_agent.train.data import ExampleStream, load_examples, split_by_trajectory, training_rendering

    rendering = training_rendering(cfg, tokenizer, lambda _: None)
    train, _ = split_by_trajectory(load_examples(cfg, tokenizer, rendering), cfg.validation.trajectories, cfg.seed)
    rows = [{"prompt": render_prompt(tokenizer, ex.prompt, ex.tools), "expert_action": ex.expert_action,
             "tool_names": ex.tool_names} for ex in ExampleStream(train, cfg.seed).take(count)]
    return rows, SRLRewardConfig(**cfg.srl_reward.model_dump(), call_style=rendering.call_style)


def measure_trl(args: argparse.Namespace) -> dict[str, float]:
    """TRL's GRPOTrainer on our workload; side trl in our precision (fp32 weights, bf16 autocast on a GPU, as our
    trainer keeps them), side trl_bf16 with the weights in bf16, as TRL's measured anchor."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from srl_agent.reward import TRLRewardFunction
    from srl_agent.train.model import load_model

    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-trl-") as out:
        cfg = config_for(args, out)
        model, tokenizer = load_model(cfg)
        if args.side == "trl_bf16":
            model.to(torch.bfloat16)
        rows, reward_cfg = trl_workload(cfg, tokenizer, args.batch * (args.steps + 1))
        dataset = Dataset.from_list(rows)
        step_times: list[float] = []

        class StepTimer(TrainerCallback):
            def on_step_begin(self, *a, **k):
                self.start = time.perf_counter()

            def on_step_end(self, _args, _state, control, **k):
                step_times.append(time.perf_counter() - self.start)
                if len(step_times) >= 2 and args.deadline and time.time() > args.deadline:  # warm-up + one measured
                    control.should_training_stop = True

        cuda = torch.cuda.is_available()
        trl_args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.batch * args.group, num_generations=args.group,
            max_completion_length=args.completion_tokens, max_steps=args.steps + 1, learning_rate=1e-6,
            bf16=cuda, gradient_checkpointing=cuda, report_to=[], save_strategy="no", logging_steps=10**6,
            use_cpu=not cuda, use_vllm=cfg.rollout.backend == "vllm", vllm_mode="colocate", beta=0.0,
            temperature=1.0, shuffle_dataset=False)
        GRPOTrainer(model=model, reward_funcs=TRLRewardFunction(reward_cfg), args=trl_args, train_dataset=dataset,
                    processing_class=tokenizer, callbacks=[StepTimer()]).train()
    timed = step_times[1:] or step_times  # the first step warms up
    return {"examples_per_s": args.batch / statistics.mean(timed), "steps": len(timed),
            "prompt_chars": statistics.mean(len(r["prompt"]) for r in rows), **precision(model, trl_args.bf16)}


def with_fields(args: argparse.Namespace, **changes) -> argparse.Namespace:
    """`args` with some fields changed (the parent's own stay as they are)."""
    return argparse.Namespace(**{**vars(args), **changes})


def run_child(command: list[str], kill_at: float, say) -> tuple[int, bool, list[str]]:
    """Run `command`, saying its output as it comes: (exit code, whether it was stopped at `kill_at`, its last lines).

    It gets a process group of its own and, at `kill_at`, SIGTERM to the whole group, then SIGKILL: torchrun (under
    `accelerate launch`) starts its workers in sessions of their own, which only the TERM it forwards reaches. A
    group, not a session: the device tool's clean-up still reaches whatever is left at the end of a run."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, process_group=0)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 0)):
            with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
                os.killpg(child.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(wait_s)
                return

    killer = threading.Timer(max(0.0, kill_at - time.time()), stop)
    killer.start()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        for line in child.stdout:
            say(line.rstrip("\n"))
            tail.append(line.rstrip("\n"))
        code = child.wait()
    finally:
        killer.cancel()
    return code, stopped.is_set(), list(tail)


def in_child(args: argparse.Namespace, side: str, say, kill_at: float) -> dict:
    """One side in its own process, so each starts with a clean GPU (and its own vLLM engine); its output is said.
    The LAUNCHED sides run under `accelerate launch` with our FSDP2 config and one process. A side that fails, or is
    still running at `kill_at`, comes back as {"error": ...} with what it wrote before (a side may write as it
    goes; a failed child adds its exception and traceback): the other sides still run and report."""
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as tmp:
        out = Path(tmp) / f"{side}.json"
        argv = ["--model", args.model, "--batch", str(args.batch), "--group", str(args.group), "--prompt-tokens",
                str(args.prompt_tokens), "--completion-tokens", str(args.completion_tokens), "--micro-batch",
                str(args.micro_batch), "--steps", str(args.steps), "--update-layout", args.update_layout,
                "--rollout-backend", args.rollout_backend, "--trajectories", args.trajectories,
                *(["--smoke"] if args.smoke else []), "--side", side, "--deadline", str(args.deadline),
                "--json", str(out)]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP2_CONFIG),
                    "--num_processes", "1"] if side in LAUNCHED else [sys.executable]
        code, stopped, tail = run_child([*launcher, __file__, *argv], kill_at, say)
        written = json.loads(out.read_text()) if out.is_file() else {}
        if code or stopped or not written:
            why = "stopped: still running at its time limit" if stopped else f"exit {code}" if code else \
                "exit 0 without its results"
            say(f"the {side} side failed ({why}){': ' + written['exception'] if 'exception' in written else ''}; "
                "its output is above")
            return {**written, "error": why, "output_tail": tail}
        return written


def gib_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} GiB"


def report(side: str, r: dict, say) -> None:
    """The lines a person reads for one side's results."""
    if side == "untied_fsdp2":
        say(f"check 1, {r['engine']} on the 7B's shape cut to {r['layers']} layers ({'tied' if r['tied'] else 'untied'}"
            f" head, vocabulary {r['vocab']:,}, log-probs in chunks of {r['logprob_chunk_tokens']}): {r['updates']} "
            f"of {r['steps']} GRPO steps updated (log-prob chunks per micro-batch: "
            f"{r['logprob_chunks_per_micro_batch']}), steps "
            + ", ".join(f"{s:.1f}" for s in r["step_seconds"]) + f" s, save {r['save_seconds']:.1f} s, "
            f"{'saved' if r['saved'] else 'NOT saved'}")
    elif side == "recipe_7b":
        say(f"check 2, the 7B at the recipe's lengths on one card (LoRA r {r['lora_r']}, {r['precision']}, "
            f"{r['attention']}, built in {r['load_seconds']:.0f} s): generation of {r['generation_sequences']} x "
            f"({r['prompt_tokens']} + {r['generated_tokens']}) tokens in {r['generation_seconds']:.1f} s (prefill "
            f"{r['prefill_seconds']:.1f} s, decode {r['decode_ms_per_token']:.1f} ms/token), peak "
            f"{gib_text(r['generation_peak_memory_gib'])} (planned {r['generation_planned_gib']:.1f}); update of "
            f"{r['update_sequences']} sequences ({r['update_micro_batch_rows']} rows per micro-batch, "
            f"micro_batch_size {r['micro_batch_size']}) in {r['update_seconds']:.1f} s, peak "
            f"{gib_text(r['update_peak_memory_gib'])} (planned {r['update_planned_gib']:.1f}), of "
            f"{r['card_gib']:.0f} GiB")
    elif side == "rollout":
        say("generation alone: " + ", ".join(f"{cache} cache {x['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in x
                                             else f"{cache} cache failed ({x['error']})" for cache, x in r.items()))
    elif side == "layouts":
        for name, x in r.items():
            say(f"update alone, {name}: {x['tokens_per_s']:.0f} forward tokens/s"
                + (f", MFU {x['mfu']:.1%}, peak {x['peak_memory_gib']:.1f} GiB" if x["mfu"] is not None else ""))
    elif side in ("trl", "trl_bf16"):
        say(f"TRL GRPOTrainer ({r['precision']}): {r['examples_per_s']:.3f} examples/s over {r['steps']} steps")
    else:  # ours, fsdp2
        say(f"{r['engine']} ({r['precision']}): {r['examples_per_s']:.3f} examples/s over {r['steps']} steps, "
            f"generation {r['generation_tokens_per_s']:.0f} tokens/s ({r['backend']}), update "
            f"{r['update_tokens_per_s']:.0f} tokens/s"
            + (f", MFU {r['update_mfu']:.1%} (target >= 40 %)" if r["update_mfu"] is not None else ""))
        if r["peak_memory_gib"] is not None:
            say(f"{r['engine']}: peak memory {r['peak_memory_gib']:.1f} GiB against the --dry-run plan's "
                f"{r['planned_memory_gib']:.1f} GiB")


def ratios(results: dict, args: argparse.Namespace, card: str) -> dict:
    """Our examples/s over TRL's, each labelled with both sides' precisions: `ratio` side by side in the same
    precision, `ratio_to_trl_bf16` against TRL with bf16 weights, and (on the anchor workload and card)
    `ratio_to_trl_anchor` against TRL's measured anchor."""
    ours = results.get("ours", {})
    if "examples_per_s" not in ours:
        return {}
    found, labels = {}, {}
    for key, trl in (("ratio", results.get("trl", {})), ("ratio_to_trl_bf16", results.get("trl_bf16", {}))):
        if "examples_per_s" in trl:
            found[key] = ours["examples_per_s"] / trl["examples_per_s"]
            labels[key] = f"ours ({ours['precision']}) / TRL ({trl['precision']})"
    workload = {k: v for k, v in TRL_ANCHOR.items() if k not in ("card", "examples_per_s", "precision")}
    if TRL_ANCHOR["card"] in card and all(getattr(args, k) == v for k, v in workload.items()):
        found["ratio_to_trl_anchor"] = ours["examples_per_s"] / TRL_ANCHOR["examples_per_s"]
        labels["ratio_to_trl_anchor"] = f"ours ({ours['precision']}) / TRL's anchor ({TRL_ANCHOR['precision']})"
    return {**found, "ratio_labels": labels} if found else {}


def measured_ok(side: str, r: dict) -> bool:
    """Whether a side measured what it was for: the untied check its two updates and its save, the rollout side
    every cache."""
    if "error" in r or "skipped" in r:
        return False
    if side == "untied_fsdp2":
        return r["updates"] == r["steps"] == UNTIED_STEPS and r["saved"]
    return side != "rollout" or all("tokens_per_s" in x for x in r.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="0.5b")
    parser.add_argument("--batch", type=int, default=16, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--prompt-tokens", type=int, default=2048)
    parser.add_argument("--completion-tokens", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward in the update")
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    parser.add_argument("--update-layout", default="auto", choices=["auto", "padded", "padding_free", "shared_prefix"],
                        help="our update's layout (shared_prefix turns gradient checkpointing off)")
    parser.add_argument("--rollout-backend", default="auto", choices=["auto", "hf", "hf_static", "hf_paged", "vllm"],
                        help="ours: auto = vllm when it imports on a GPU, else the fastest KV cache the rollout side "
                             "measured, else hf")
    parser.add_argument("--sides", nargs="+", choices=list(SHARES), default=list(SHARES), metavar="SIDE",
                        help=f"which sides run (always in this order): {', '.join(SHARES)}")
    parser.add_argument("--no-trl", action="store_true", help="skip the TRL sides (e.g. trl is not installed)")
    parser.add_argument("--budget-s", type=float, default=360,
                        help="wall-clock seconds for all sides: each gets a share of what is left and measures fewer "
                             "steps (at least one) to keep to it; a side that would start with under "
                             f"{MIN_SIDE_S} s left is skipped, one still running {SIDE_GRACE_S} s past its share or "
                             f"{KILL_AFTER_BUDGET_S} s past the budget is stopped")
    parser.add_argument("--trajectories", default=str(FIXTURES),
                        help="expert trajectories for the prompts (a device run carries a copy: benchmarks/gpu_run.sh)")
    parser.add_argument("--smoke", action="store_true", help="CPU check: the tiny model and short lengths")
    parser.add_argument("--out", help="write results.json and log.txt into this folder (results.json after each side)")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # internal: where a child writes its side
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # internal: the end of a child's share
    parser.add_argument("--side", choices=list(SHARES), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.completion_tokens, args.steps, args.micro_batch = 2, 16, 1, 8
    if args.side:  # a child process: measure one side, write it, done
        measure = {"untied_fsdp2": measure_untied_fsdp2, "recipe_7b": measure_recipe_7b, "rollout": measure_rollout,
                   "ours": measure_ours, "layouts": measure_layouts, "fsdp2": measure_ours, "trl": measure_trl,
                   "trl_bf16": measure_trl}[args.side]
        try:
            write_json(args.json, measure(args))
        except Exception as e:  # for the parent: what the side wrote before, the exception and where it came from
            written = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else {}
            write_json(args.json, {**written, "exception": f"{type(e).__name__}: {e}"[:2000],
                                   "traceback": traceback.format_exc().splitlines()[-15:]})
            raise
        return 0
    budget_end = time.time() + args.budget_s
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.txt").open("w", encoding="utf-8") if out else None

    def say(line: str) -> None:
        print(line, flush=True)
        if log:
            log.write(line + "\n")
            log.flush()

    def save(results: dict) -> None:
        if out:
            with atomic_writer(out / "results.json") as f:
                f.write(json.dumps(results, indent=1))

    card, _ = card_peak()
    libraries = versions()
    say(f"machine: {machine()}; device: {card}; " + ", ".join(f"{k} {v}" for k, v in libraries.items() if v))
    say(f"model {'tiny' if args.smoke else args.model}, batch {args.batch} prompts x G {args.group}, prompts <= "
        f"{args.prompt_tokens} tokens, completions <= {args.completion_tokens}, up to {args.steps} measured steps, "
        f"{args.budget_s:.0f} s budget")
    sides = [side for side in SHARES if side in args.sides and not (args.no_trl and side.startswith("trl"))
             and not (side == "rollout" and args.rollout_backend == "vllm")]
    results: dict = {"device": card, "machine": machine(), "versions": libraries, "args": dict(vars(args)),
                     "sides": sides, "trl_anchor": TRL_ANCHOR, "passed": {}, "wall_seconds": {}}
    vllm = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if args.rollout_backend == "auto" and "rollout" not in sides:  # no caches measured to choose from
        args.rollout_backend = results["rollout_backend"] = "vllm" if vllm else "hf"
    # Only ours and TRL sample with the chosen engine: the others check a path, measure caches, updates or memory,
    # and a compiled or paged engine there would cost time (or, under FSDP2, add an untried combination) for nothing.
    plain_hf = {"untied_fsdp2", "recipe_7b", "rollout", "layouts", "fsdp2"}
    for i, side in enumerate(sides):
        left = budget_end - time.time()
        if left < MIN_SIDE_S:
            results[side] = r = {"skipped": f"under {MIN_SIDE_S} s of the {args.budget_s:.0f} s budget left"}
            say(f"{side}: skipped, {r['skipped']}")
        else:
            deadline = time.time() + left * SHARES[side] / sum(SHARES[s] for s in sides[i:])
            side_args = with_fields(args, deadline=deadline,
                                    **({"rollout_backend": "hf"} if side in plain_hf else {}))
            kill_at = min(budget_end + KILL_AFTER_BUDGET_S, deadline + SIDE_GRACE_S)
            side_start = time.time()
            results[side] = r = in_child(side_args, side, say, kill_at)
            results["passed"][side] = measured_ok(side, r)
            results["wall_seconds"][side] = time.time() - side_start
            if "error" not in r:
                report(side, r, say)
        if side == "rollout" and args.rollout_backend == "auto":  # the KV caches side by side: take the fastest
            speeds = {cache: x["tokens_per_s"] for cache, x in r.items()
                      if isinstance(x, dict) and "tokens_per_s" in x}
            args.rollout_backend = "vllm" if vllm else ROLLOUT_BACKENDS[max(speeds, key=speeds.get, default="dynamic")]
            results["rollout_backend"] = args.rollout_backend
        results.update(ratios(results, args, card))
        save(results)  # after every side: a device run cut short keeps what it measured
    for key, label in results.get("ratio_labels", {}).items():
        say(f"{label}: {results[key]:.2f}x examples/s (target >= 3x)")
    if out:
        say(f"wrote {out / 'results.json'} and {out / 'log.txt'}")
    failed = [side for side, ok in results["passed"].items() if not ok]
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
