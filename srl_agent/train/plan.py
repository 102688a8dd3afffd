"""Will it fit? Per-GPU memory of a run, from its config and the cluster's shape alone (no weights load).

    weights     fp32 master weights (4 B/parameter); a LoRA model's frozen base in bf16 (2 B)
    gradients   fp32, for the trained parameters (4 B)
    optimizer   AdamW's two fp32 moments (8 B)
                DDP holds all three whole on every GPU; FSDP2 and ZeRO-3 hold 1/N of them, plus the bf16
                copies of the layers gathered at a time (two: the one computing and the one prefetched)
    activations one micro-batch of micro_batch_size x (max_prompt_tokens + max_new_tokens) tokens, kept
                for the backward pass: about 2 B x (8h + 3i) per token and layer in bf16 (h hidden,
                i MLP width; attention from sdpa/flash keeps no s^2 scores); with gradient checkpointing
                only each layer's input (2h) plus one layer's worth during its recomputation
    log-probs   the micro-batch's final hidden states and one chunk of fp32 logits (train/logprobs.py)
    reference   with kl_coef > 0, the starting model for the KL term: fp32 and whole on every GPU
    rollouts    HF generation's KV cache for generation_batch_size sequences (its keys fp32 for full fine-tuning
                under autocast), or the share of the GPU a colocated vLLM engine takes (vllm_gpu_memory_utilization)

These are estimates: allocator fragmentation, the CUDA context (~0.5 GB) and temporary buffers come on
top, so a run is called tight above 90 % of the card. `benchmarks/plan_vs_measured.py` checks the
estimate against the measured peak of a real step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .config import TrainConfig

Engine = Literal["ddp", "fsdp2", "zero3"]
GB = 1e9
BF16, FP32 = 2, 4


@dataclass
class ModelShape:
    """What the planner needs of a model: read from its config.json, never its weights."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @property
    def layer_params(self) -> int:
        attention = self.hidden * self.head_dim * (self.heads * 2 + self.kv_heads * 2) + \
            self.head_dim * (self.heads + 2 * self.kv_heads)  # q, k, v, o and Qwen2's q/k/v biases
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_params + embeddings + self.hidden

    def lora_params(self, rank: int, modules: list[str]) -> int:
        """Parameters of LoRA adapters (A: in x r, B: r x out) on the named linear layers of every block."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                  "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                  "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}
        return self.layers * sum(rank * (a + b) for name, (a, b) in shapes.items() if name in modules)

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """A transformers PretrainedConfig (Qwen2, Llama and the like)."""
        heads = config.num_attention_heads
        return cls(vocab=config.vocab_size, hidden=config.hidden_size, intermediate=config.intermediate_size,
                   layers=config.num_hidden_layers, heads=heads,
                   kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                   head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
                   tied=bool(getattr(config, "tie_word_embeddings", False)))


@dataclass
class Plan:
    engine: Engine
    gpus: int
    gpu_gb: float
    items: dict[str, float] = field(default_factory=dict)
    """Per-GPU gigabytes by item (see the module docstring)."""
    advice: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.items.values())

    @property
    def fits(self) -> bool:
        return self.total <= 0.9 * self.gpu_gb


def plan_memory(cfg: TrainConfig, shape: ModelShape, gpus: int, gpu_gb: float, engine: Engine,
                compute_bytes: int = BF16, gradient_checkpointing: bool | None = None) -> Plan:
    """The per-GPU memory of `cfg` on `gpus` cards of `gpu_gb` GB each under `engine`."""
    checkpointing = cfg.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    shards = gpus if engine != "ddp" else 1
    if cfg.lora:
        trained = shape.lora_params(cfg.lora_r, cfg.lora_target_modules)
        weights = shape.params * compute_bytes + trained * FP32
    else:
        trained = shape.params
        weights = shape.params * FP32
    items = {"weights": weights / shards / GB, "gradients": trained * FP32 / shards / GB,
             "optimizer": trained * 2 * FP32 / shards / GB}
    if cfg.kl_coef > 0:  # the trainer's frozen copy of the starting model: fp32, not prepared, so whole on every GPU
        items["reference (KL)"] = shape.params * FP32 / GB
    if shards > 1:  # the bf16 layers gathered for compute at a time
        items["gathered layers"] = 2 * shape.layer_params * compute_bytes / GB
    tokens = cfg.micro_batch_size * ((cfg.max_prompt_tokens or 4096) + cfg.max_new_tokens)
    per_token_layer = compute_bytes * (8 * shape.hidden + 3 * shape.intermediate)
    if checkpointing:
        items["activations"] = tokens * (shape.layers * compute_bytes * shape.hidden + per_token_layer) / GB
    else:
        items["activations"] = tokens * shape.layers * per_token_layer / GB
    chunk = min(cfg.logprob_chunk_tokens, cfg.micro_batch_size * cfg.max_new_tokens)
    items["log-prob buffers"] = (tokens * shape.hidden * compute_bytes + 3 * chunk * shape.vocab * FP32) / GB
    if cfg.rollout_backend == "vllm":
        items["rollout engine (vLLM)"] = cfg.vllm_gpu_memory_utilization * gpu_gb
    else:
        sequence = (cfg.max_prompt_tokens or 4096) + cfg.max_new_tokens
        # One process or DDP generates with fp32 weights under autocast: the rotary embedding keeps the keys fp32
        # (the values are v_proj's bf16). Sharded engines and a LoRA model's bf16 base keep both in bf16.
        key_bytes = FP32 if engine == "ddp" and not cfg.lora else compute_bytes
        kv = shape.layers * shape.kv_heads * shape.head_dim * (key_bytes + compute_bytes)
        items["rollout KV cache"] = cfg.generation_batch_size * sequence * kv / GB
    result = Plan(engine, gpus, gpu_gb, items)
    result.advice = _advice(cfg, result, checkpointing)
    return result


def _advice(cfg: TrainConfig, plan: Plan, checkpointing: bool) -> list[str]:
    if plan.fits:
        return []
    items, advice = plan.items, []
    model_state = items["weights"] + items["gradients"] + items["optimizer"]
    if plan.engine == "ddp" and model_state > 0.3 * plan.gpu_gb:
        advice.append("shard the model: accelerate launch --config_file configs/accelerate/fsdp2.yaml")
    if not checkpointing and items["activations"] > 0.2 * plan.gpu_gb:
        advice.append("--set gradient_checkpointing=true (update_layout padded)")
    if items["activations"] > 0.2 * plan.gpu_gb and cfg.micro_batch_size > 1:
        advice.append(f"--set micro_batch_size={max(1, cfg.micro_batch_size // 2)}")
    if "rollout KV cache" in items and items["rollout KV cache"] > 0.2 * plan.gpu_gb:
        advice.append(f"--set generation_batch_size={max(1, cfg.generation_batch_size // 2)}")
    if not cfg.lora and model_state > 0.5 * plan.gpu_gb:
        advice.append("--set lora=true (configs/swe-1gpu.yaml)")
    if plan.engine != "ddp":
        advice.append("more GPUs (--num_processes) divide the weights, gradients and optimizer state")
    return advice


def render(plan: Plan) -> str:
    lines = [f"per GPU, {plan.engine} on {plan.gpus} x {plan.gpu_gb:g} GB:"]
    lines += [f"  {name:<22} {gb:8.2f} GB" for name, gb in plan.items.items()]
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"  {'total':<22} {plan.total:8.2f} GB of {plan.gpu_gb:g} GB: {verdict} (limit 90 %)")
    lines += [f"  to fit: {a}" for a in plan.advice]
    return "\n".join(lines)


def model_shape(cfg: TrainConfig) -> ModelShape:
    """The run's model shape from its config alone: `tiny` from `tiny_model` and the shipped tokenizer, else the
    checkpoint's config.json (a local folder, `config:FOLDER` or a hub id, as transformers resolves it)."""
    from transformers import AutoConfig

    from ..pretrained import from_pretrained
    from ..tokenizer import load_tokenizer
    from .model import CONFIG_PREFIX

    source = cfg.init_from or cfg.model
    if source == "tiny":
        t = cfg.tiny_model
        return ModelShape(vocab=len(load_tokenizer()), hidden=t.hidden_size, intermediate=t.intermediate_size,
                          layers=t.num_hidden_layers, heads=t.num_attention_heads, kv_heads=t.num_key_value_heads,
                          head_dim=t.hidden_size // t.num_attention_heads, tied=True)
    return ModelShape.from_config(from_pretrained(AutoConfig, source.removeprefix(CONFIG_PREFIX)))


def dry_run(cfg: TrainConfig, gpus: int, gpu_gb: float, engine: Engine | None = None) -> tuple[str, bool]:
    """`srl-agent train --dry-run`: the plan for `engine` (default: fsdp2 on several GPUs, else ddp), the other
    engines' totals and the activations with and without gradient checkpointing; and whether it fits."""
    shape = model_shape(cfg)
    engine = engine or ("fsdp2" if gpus > 1 else "ddp")
    chosen = plan_memory(cfg, shape, gpus, gpu_gb, engine)
    lines = [f"{shape.params / 1e9:.2f} B parameters ({'LoRA' if cfg.lora else 'full fine-tuning'}), "
             f"micro-batches of {cfg.micro_batch_size} x {(cfg.max_prompt_tokens or 4096) + cfg.max_new_tokens} "
             f"tokens", render(chosen)]
    for other in ("ddp", "fsdp2", "zero3"):
        if other != engine:
            p = plan_memory(cfg, shape, gpus, gpu_gb, other)
            lines.append(f"{other}: {p.total:.2f} GB per GPU ({'fits' if p.fits else 'does NOT fit'})")
    with_gc, without = (plan_memory(cfg, shape, gpus, gpu_gb, engine, gradient_checkpointing=g).items["activations"]
                        for g in (True, False))
    lines.append(f"activations: {with_gc:.2f} GB with gradient checkpointing, {without:.2f} GB without")
    return "\n".join(lines), chosen.fits
