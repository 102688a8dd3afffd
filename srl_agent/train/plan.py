"""Will it fit? Per-GPU memory of a run, from its config and the cluster's shape alone (no weights load).

A step's phases follow one another, each freeing its memory before the next: the rollouts' generation, the GRPO
update and, with LoRA, the checkpoint save. A phase's peak is the sum of its terms (all counted as held at once:
an upper bound); the run's peak is the largest phase's, the binding phase. The terms, and the phases that hold them:

    weights             fp32 master weights (4 B/parameter); a LoRA model's frozen base in bf16 (2 B)      all
    gradients           fp32, of the trained parameters (4 B); set to None after every optimizer step    update
    optimizer           AdamW's two fp32 moments (8 B) of the trained parameters                            all
                        (DDP holds these three whole on every GPU; FSDP2 and ZeRO-3 hold 1/N of them)
    reference (KL)      with kl_coef > 0 in full fine-tuning, the starting model in the compute dtype, whole on
                        every GPU (LoRA's reference is its own base with the adapter off: nothing)    all
    gathered layers     sharded: bf16 copies of two decoder layers (computing, prefetched)             update
    gathered head       sharded: accelerate's last unit (final norm, head and, when tied, the embedding), never
                        resharded after a forward: gathered from the first forward on                 update
    gathered model      sharded, HF generation: every unit gathered once for the sampling phase and kept
                        (distributed.py `whole_weights_for_sampling`; per token it would be gathered again) generation
    head reduce-scatter sharded: the head's unsharded bf16 gradient and the fp32 copy reduced          update
    autocast copies     one process or DDP, full fine-tuning in bf16: autocast keeps a bf16 copy of every fp32
                        weight a forward multiplies by (projections, head) until it ends   generation, update
    activations         a micro-batch of micro_batch_size x (max_prompt_tokens + max_new_tokens) tokens kept for
                        the backward pass (`ModelShape.saved_bytes` per token and layer); with gradient
                        checkpointing only each layer's input, the residual stream (fp32 under autocast over
                        fp32 weights), plus one layer's worth during its recomputation                update
    log-prob buffers    the micro-batch's final hidden states and fp32 logits of one chunk (logprobs.py)   update
    KV cache            generation_batch_size sequences: HF generation keeps the keys in the stream's dtype
                        (the rotary embedding's) and the values in the compute dtype; the paged cache
                        (hf_paged) both in the weights' dtype                                          generation
    prefill             the MLP intermediates (gate, activation, up: 3 x MLP width) of one forward's prompts:
                        the generation batch's, or PAGED_BATCH_TOKENS with continuous batching         generation
    paged attention mask  hf_paged with sdpa/eager: PAGED_BATCH_TOKENS rows over the whole paged cache plus
                        those rows, in the weights' dtype                                              generation
    rollout engine (vLLM)  a colocated vLLM engine's share of the GPU (vllm_gpu_memory_utilization) generation
    merged copy         a LoRA save merges a deep copy of the model, base and adapters                LoRA save

These are estimates: allocator fragmentation, the CUDA context (~0.5 GB) and temporary buffers come on
top, so a run is called tight above 90 % of the card. `benchmarks/plan_vs_measured.py` checks the update's
estimate against the measured peak of a real step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import UserError
from ..policy.hf import PAGED_BATCH_TOKENS
from .config import TrainConfig

Engine = Literal["ddp", "fsdp2", "zero3"]
GB = 1e9
BF16, FP32 = 2, 4
GENERATION, UPDATE, SAVE = "generation", "update", "LoRA save"
HUB_IDS = "hub_ids.txt"
"""In a folder of configs/models/: the hub checkpoints of that shape, one a line (the planner reads the shape
there instead of asking the hub)."""


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
    max_positions: int | None = None
    """max_position_embeddings: the longest prompt plus completion the model takes (None: not known)."""

    @property
    def projection_params(self) -> int:
        """One decoder layer's linear weights and biases: q, k, v, o (with Qwen2's q/k/v biases), gate, up, down."""
        attention = self.hidden * self.head_dim * (self.heads * 2 + self.kv_heads * 2) + \
            self.head_dim * (self.heads + 2 * self.kv_heads)
        return attention + 3 * self.hidden * self.intermediate

    @property
    def layer_params(self) -> int:
        return self.projection_params + 2 * self.hidden  # and the two RMSNorm weights

    @property
    def embedding_params(self) -> int:
        """vocab x hidden: the embedding, and again the head when untied."""
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.embedding_params * (1 if self.tied else 2) + self.hidden

    def lora_params(self, rank: int, modules: list[str]) -> int:
        """Parameters of LoRA adapters (A: in x r, B: r x out) on the named linear layers of every block."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                  "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                  "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}
        return self.layers * sum(rank * (a + b) for name, (a, b) in shapes.items() if name in modules)

    def saved_bytes(self, compute_bytes: int, stream_bytes: int) -> int:
        """Bytes one decoder layer keeps per token for its backward pass, computing in `compute_bytes` with its
        residual stream in `stream_bytes` (measured in tests/test_plan.py):

            each RMSNorm    its input in fp32 (a copy unless the stream is fp32), its output in the stream's
                            dtype and the fp32 inverse RMS
            projections     their inputs in the compute dtype: each norm's output once, or once per projection
                            (q, k, v; gate, up) when autocast casts an fp32 stream; o_proj's, the attention output
            attention       sdpa's q, k and v (grouped-query: k and v at kv_heads) and its fp32 log-sum-exp
            MLP             the gate and up outputs, the activation and their product (4 x MLP width)"""
        h, a = self.hidden, compute_bytes
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        norms = 2 * (FP32 * h + stream_bytes * h + FP32)
        norm_output_casts = 5 if stream_bytes != compute_bytes else 2
        projections = norm_output_casts * a * h + a * q
        attention = a * (q + 2 * kv) + FP32 * self.heads
        return norms + projections + attention + 4 * a * self.intermediate

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """A transformers PretrainedConfig (Qwen2, Llama and the like)."""
        heads = config.num_attention_heads
        return cls(vocab=config.vocab_size, hidden=config.hidden_size, intermediate=config.intermediate_size,
                   layers=config.num_hidden_layers, heads=heads,
                   kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                   head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
                   tied=bool(getattr(config, "tie_word_embeddings", False)),
                   max_positions=getattr(config, "max_position_embeddings", None))


@dataclass
class Plan:
    engine: Engine
    gpus: int
    gpu_gb: float
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-GPU gigabytes by phase, then term (see the module docstring)."""
    advice: list[str] = field(default_factory=list)

    @property
    def peaks(self) -> dict[str, float]:
        return {phase: sum(terms.values()) for phase, terms in self.phases.items()}

    @property
    def binding(self) -> str:
        """The phase with the highest peak: the one that decides whether the run fits."""
        peaks = self.peaks
        return max(peaks, key=peaks.__getitem__)

    @property
    def peak(self) -> float:
        return self.peaks[self.binding]

    @property
    def fits(self) -> bool:
        return self.peak <= 0.9 * self.gpu_gb


def check_context(cfg: TrainConfig, shape: ModelShape) -> None:
    """A prompt and completion longer than the model's positions is refused before anything loads."""
    if shape.max_positions is None or cfg.data.max_prompt_tokens is None:
        return
    if cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens > shape.max_positions:
        raise UserError(f"data.max_prompt_tokens {cfg.data.max_prompt_tokens} + rollout.max_new_tokens "
                        f"{cfg.rollout.max_new_tokens} = "
                        f"{cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens} tokens exceed the model's "
                        f"max_position_embeddings {shape.max_positions}: lower max_prompt_tokens or max_new_tokens "
                        f"(--set data.max_prompt_tokens=N)")


def plan_memory(cfg: TrainConfig, shape: ModelShape, gpus: int, gpu_gb: float, engine: Engine,
                compute_bytes: int = BF16, gradient_checkpointing: bool | None = None) -> Plan:
    """The per-GPU memory of `cfg` on `gpus` cards of `gpu_gb` GB each under `engine`, phase by phase."""
    check_context(cfg, shape)
    checkpointing = cfg.compute.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    sharded = engine != "ddp"
    shards = gpus if sharded else 1
    weight_bytes = compute_bytes if cfg.lora.enabled else FP32  # fp32 masters; a LoRA model's base as it computes
    autocast = not sharded and not cfg.lora.enabled and compute_bytes < FP32  # fp32 weights in bf16 by autocast
    stream_bytes = FP32 if autocast else compute_bytes  # the residual stream: fp32 from the fp32 embedding
    trained = shape.lora_params(cfg.lora.r, cfg.lora.target_modules) if cfg.lora.enabled else shape.params
    head = shape.embedding_params

    state = {"weights": (shape.params * weight_bytes + (trained * FP32 if cfg.lora.enabled else 0)) / shards,
             "optimizer": trained * 2 * FP32 / shards}
    if cfg.grpo.kl_coef > 0 and not cfg.lora.enabled:  # the trainer's frozen copy: not prepared, whole on every GPU
        state["reference (KL)"] = shape.params * compute_bytes
    computing = {}  # what the model's own forward passes hold besides (not a vLLM engine's generation)
    if sharded:
        computing["gathered layers"] = 2 * shape.layer_params * compute_bytes
        computing["gathered head"] = head * compute_bytes
    if autocast:
        computing["autocast copies"] = (shape.layers * shape.projection_params + head) * compute_bytes

    update = {"weights": state["weights"], "gradients": trained * FP32 / shards, **state, **computing}
    if sharded:
        update["head reduce-scatter"] = head * (compute_bytes + FP32)
    sequence = (cfg.data.max_prompt_tokens or 4096) + cfg.rollout.max_new_tokens
    tokens = cfg.compute.micro_batch_size * sequence
    per_layer = shape.saved_bytes(compute_bytes, stream_bytes)
    update["activations"] = tokens * (shape.layers * shape.hidden * stream_bytes + per_layer) if checkpointing else \
        tokens * shape.layers * per_layer
    chunk = min(cfg.compute.logprob_chunk_tokens, cfg.compute.micro_batch_size * cfg.rollout.max_new_tokens)
    update["log-prob buffers"] = tokens * shape.hidden * stream_bytes + 3 * chunk * shape.vocab * FP32

    generation = dict(state)
    if cfg.rollout.backend == "vllm":
        generation["rollout engine (vLLM)"] = cfg.rollout.vllm_gpu_memory_utilization * gpu_gb * GB
    else:
        generation.update({"gathered model": shape.params * compute_bytes} if sharded else computing)
        cache_tokens = cfg.rollout.generation_batch_size * sequence
        prompt_tokens = cfg.rollout.generation_batch_size * (cfg.data.max_prompt_tokens or 4096)
        kv_width = shape.layers * shape.kv_heads * shape.head_dim
        if cfg.rollout.backend == "hf_paged":
            generation["KV cache"] = cache_tokens * kv_width * 2 * weight_bytes
            prompt_tokens = min(prompt_tokens, PAGED_BATCH_TOKENS)  # continuous batching's prefill, a slice at a time
            if cfg.compute.attn_implementation != "flash_attention_2":
                generation["paged attention mask"] = prompt_tokens * (cache_tokens + prompt_tokens) * weight_bytes
        else:
            generation["KV cache"] = cache_tokens * kv_width * (stream_bytes + compute_bytes)
        generation["prefill"] = prompt_tokens * 3 * shape.intermediate * compute_bytes

    phases = {GENERATION: generation, UPDATE: update}
    if cfg.lora.enabled:
        phases[SAVE] = {**state, "merged copy": shape.params * weight_bytes + trained * FP32}
    result = Plan(engine, gpus, gpu_gb, {name: {term: b / GB for term, b in terms.items()}
                                         for name, terms in phases.items()})
    result.advice = _advice(cfg, result, checkpointing)
    return result


def _advice(cfg: TrainConfig, plan: Plan, checkpointing: bool) -> list[str]:
    if plan.fits:
        return []
    over = [terms for terms in plan.phases.values() if sum(terms.values()) > 0.9 * plan.gpu_gb]

    def large(*names: str) -> bool:  # a term of a phase that does not fit takes a fifth of the card
        return any(terms.get(name, 0) > 0.2 * plan.gpu_gb for terms in over for name in names)

    update, advice = plan.phases[UPDATE], []
    model_state = update["weights"] + update["gradients"] + update["optimizer"]
    if plan.engine == "ddp" and model_state > 0.3 * plan.gpu_gb:
        advice.append("shard the model: accelerate launch --config_file configs/accelerate/fsdp2.yaml")
    if not checkpointing and large("activations"):
        advice.append("--set compute.gradient_checkpointing=true (compute.update_layout padded)")
    if large("activations") and cfg.compute.micro_batch_size > 1:
        advice.append(f"--set compute.micro_batch_size={max(1, cfg.compute.micro_batch_size // 2)}")
    if large("KV cache", "prefill", "paged attention mask"):
        advice.append(f"--set rollout.generation_batch_size={max(1, cfg.rollout.generation_batch_size // 2)}")
    if not cfg.lora.enabled and model_state > 0.5 * plan.gpu_gb:
        advice.append("--set lora.enabled=true (configs/swe-1gpu.yaml)")
    if plan.engine != "ddp":
        advice.append("more GPUs (--num_processes) divide the weights, gradients and optimizer state")
    return advice


def render(plan: Plan) -> str:
    """A table: a row per term, a column per phase, each phase's peak, and the binding phase's verdict."""
    terms = dict.fromkeys(plan.phases[UPDATE])  # the update's terms first: it holds the whole model state
    for phase in plan.phases.values():
        terms.update(dict.fromkeys(phase))
    lines = [f"per GPU, {plan.engine} on {plan.gpus} x {plan.gpu_gb:g} GB:",
             f"  {'GB':<22}" + "".join(f" {name:>12}" for name in plan.phases)]
    for term in terms:
        cells = (f"{phase[term]:.2f}" if term in phase else "-" for phase in plan.phases.values())
        lines.append(f"  {term:<22}" + "".join(f" {cell:>12}" for cell in cells))
    lines.append(f"  {'peak':<22}" + "".join(f" {gb:12.2f}" for gb in plan.peaks.values()))
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"  binding phase: {plan.binding}, {plan.peak:.2f} GB of {plan.gpu_gb:g} GB: {verdict} (limit 90 %)")
    lines += [f"  to fit: {a}" for a in plan.advice]
    return "\n".join(lines)


def shape_folder(source: str) -> Path | None:
    """The folder of configs/models/ whose hub_ids.txt names the hub id `source`, if any."""
    from ..paths import project_dir

    for listing in sorted((project_dir("configs") / "models").glob(f"*/{HUB_IDS}")):
        if source.casefold() in (line.strip().casefold() for line in listing.read_text().splitlines()):
            return listing.parent
    return None


def model_shape(cfg: TrainConfig) -> ModelShape:
    """The run's model shape from its config alone: `tiny` from `tiny_model` and the shipped tokenizer, a hub id
    listed in configs/models/ from there (offline, at once), else the checkpoint's config.json (a local folder,
    `config:FOLDER` or a hub id, as transformers resolves it)."""
    from transformers import AutoConfig

    from ..pretrained import from_pretrained
    from ..tokenizer import load_tokenizer
    from .model import CONFIG_PREFIX

    source = cfg.init_from or cfg.model
    if source == "tiny":
        t = cfg.tiny_model
        return ModelShape(vocab=len(load_tokenizer()), hidden=t.hidden_size, intermediate=t.intermediate_size,
                          layers=t.num_hidden_layers, heads=t.num_attention_heads, kv_heads=t.num_key_value_heads,
                          head_dim=t.hidden_size // t.num_attention_heads, tied=True,
                          max_positions=t.max_position_embeddings)
    known = None if Path(source).exists() else shape_folder(source)
    return ModelShape.from_config(from_pretrained(AutoConfig, str(known or source.removeprefix(CONFIG_PREFIX))))


def dry_run(cfg: TrainConfig, gpus: int, gpu_gb: float, engine: Engine | None = None) -> tuple[str, bool]:
    """`srl-agent train --dry-run`: the plan for `engine` (default: fsdp2 on several GPUs, else ddp), the other
    engines' peaks and the activations with and without gradient checkpointing; and whether it fits."""
    shape = model_shape(cfg)
    engine = engine or ("fsdp2" if gpus > 1 else "ddp")
    chosen = plan_memory(cfg, shape, gpus, gpu_gb, engine)
    sequence = (cfg.data.max_prompt_tokens or 4096) + cfg.rollout.max_new_tokens
    lines = [f"{shape.params / 1e9:.2f} B parameters ({'LoRA' if cfg.lora.enabled else 'full fine-tuning'}), "
             f"micro-batches of {cfg.compute.micro_batch_size} x {sequence} tokens, generation batches of "
             f"{cfg.rollout.generation_batch_size} x {sequence}", render(chosen)]
    for other in ("ddp", "fsdp2", "zero3"):
        if other != engine:
            p = plan_memory(cfg, shape, gpus, gpu_gb, other)
            lines.append(f"{other}: {p.peak:.2f} GB per GPU in {p.binding} ({'fits' if p.fits else 'does NOT fit'})")
    with_gc, without = (plan_memory(cfg, shape, gpus, gpu_gb, engine, gradient_checkpointing=g).phases[UPDATE]
                        ["activations"] for g in (True, False))
    lines.append(f"activations: {with_gc:.2f} GB with gradient checkpointing, {without:.2f} GB without")
    return "\n".join(lines), chosen.fits
