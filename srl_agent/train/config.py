"""Training configuration: one dataclass, loadable from YAML, overridable from the command line."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import TypeAdapter, ValidationError

from ..errors import UserError
from ..rlvr.episodes import EpisodeConfig
from ..rlvr.reward import EpisodeRewardConfig

Method = Literal["srl", "sft", "rlvr", "srl+rlvr"]


@dataclass
class TinyModelConfig:
    """A small Qwen2-architecture model built from scratch (no weights to download)."""

    hidden_size: int = 64
    """Width of the residual stream."""
    intermediate_size: int = 192
    """Width of the MLP."""
    num_hidden_layers: int = 2
    """Transformer blocks."""
    num_attention_heads: int = 4
    """Query heads."""
    num_key_value_heads: int = 2
    """Key/value heads (grouped-query attention, as Qwen2)."""
    max_position_embeddings: int = 4096
    """Context window in tokens (prompt plus completion)."""


@dataclass
class TrainConfig:
    """Everything a run needs. `srl-agent train --config X.yaml --set key=value` overrides fields."""

    method: Method = "srl"
    """`srl`: GRPO on the step-wise similarity reward; `sft`: token-level imitation of the expert step;
    `rlvr`: GRPO over whole agent episodes in sandboxes, rewarded by the task's tests (needs `history: full`);
    `srl+rlvr`: both in one run and one optimizer, mixed by `rlvr_every` / `rlvr_after`."""
    model: str = "tiny"
    """`tiny` (built from `tiny_model` with the shipped tokenizer), a local path or a hub id."""
    tokenizer: str | None = None
    """Defaults to the model's own (the shipped tiny tokenizer for `tiny`)."""
    tiny_model: TinyModelConfig = field(default_factory=TinyModelConfig)
    """The shape of the `tiny` model (ignored for other models)."""
    init_from: str | None = None
    """A checkpoint to start from (chains stages: SFT -> SRL -> RLVR)."""
    trajectories: list[str] = field(default_factory=lambda: ["trajectories"])
    """Trajectory sources (any supported format), or a steps.jsonl from `srl-agent data build`."""
    output_dir: str = "runs/srl"
    """The run folder: checkpoints, best/, metrics.jsonl, tensorboard/, curves.png."""
    seed: int = 0
    """Seeds the initial weights, the data order, the held-out split and sampling."""

    # data
    history: str = "last-2"
    """Earlier steps shown in each prompt: `last-N`, `N` or `full`."""
    max_observation_chars: int = 4000
    """Tool outputs in the prompt are cut in the middle to this many characters."""
    system_prompt: str | None = None
    """The system turn's text (default: srl_agent/chat.py's SYSTEM_PROMPT); saved with the checkpoints, so
    eval prompts the model the same way. configs/swe-paper.yaml adds a worked example of the format."""
    max_prompt_tokens: int | None = 4096
    """Examples with longer prompts are dropped (null: keep all)."""
    val_trajectories: int = 2
    """Whole trajectories held out for validation (the paper held out 30)."""
    val_examples: int = 64
    """At most this many held-out steps are scored at each validation."""

    # optimisation
    max_steps: int = 100
    """Optimiser steps in all (SFT warm-up included)."""
    batch_size: int = 8
    """Prompts per optimiser step (after dynamic sampling)."""
    group_size: int = 8
    """Rollouts per prompt (G)."""
    lr: float = 5e-7
    """AdamW learning rate (the paper's 5e-7 is for a 7B model; the tiny one wants far more)."""
    lr_warmup_steps: int = 0
    """The learning rate rises linearly over a run's first N steps (1/N of it at step 1; a step whose dynamic
    sampling kept nothing counts too). A fresh AdamW's first step moves every weight by about the learning
    rate, whatever the gradient's size: after --init-from, that one noisy step can undo the checkpoint (seen
    at RLVR lr 2e-3)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm before each step."""
    micro_batch_size: int = 16
    """Sequences per forward/backward; gradients accumulate over the micro-batches of a step."""
    ppo_epochs: int = 1
    """Passes over each batch of rollouts; >1 makes the ratio (and its clipping) matter."""
    clip_low: float = 0.2
    """The ratio is clipped below at 1 - clip_low."""
    clip_high: float = 0.2
    """The ratio is clipped above at 1 + clip_high (DAPO raises it to 0.28)."""
    loss_norm: Literal["sequence", "token"] = "sequence"
    """`sequence`: mean over each sequence's tokens, then over sequences (GRPO, the paper);
    `token`: mean over all tokens of the batch (DAPO)."""
    kl_coef: float = 0.0
    """KL to the initial model (k3 estimator); 0 as in the paper."""
    sft_warmup_lr: float | None = None
    """Learning rate of the SFT warm-up (None: lr; 0 freezes it). RL wants a far smaller step than imitation."""
    sft_warmup_steps: int = 0
    """SFT steps before GRPO. A model that never writes a well-formed call gets -1 for every rollout,
    so every group is flat and dynamic sampling drops it: a short warm-up gives GRPO something to rank."""

    # sampling
    rollout_backend: Literal["hf", "hf_static", "hf_paged", "vllm"] = "hf"
    """Who samples rollouts: the trained model itself through transformers' `generate` (`hf`; `hf_static`:
    with a static KV cache, whose fixed shapes let transformers compile the decode step on CUDA; `hf_paged`:
    transformers' continuous batching over a paged KV cache, no padding, not for a model sharded over processes;
    see policy/hf.py) or a colocated vLLM engine that gets the trainer's weights after every update (`vllm`,
    needs the vllm extra and a GPU)."""
    vllm_gpu_memory_utilization: float = 0.4
    """Share of GPU memory the colocated vLLM engine may take (the rest trains)."""
    call_style: Literal["auto", "hermes", "xml", "llama"] = "auto"
    """How the policy writes its tool call (and how examples render history calls). `auto`: what the
    tokenizer's chat template implies (Hermes <tool_call> for Qwen2.5/Qwen3 and the tiny model, Llama 3.1's
    JSON); `hermes`, `xml` (<function=...>) or `llama` choose it."""
    generation_batch_size: int = 64
    """Sequences per generate() call: bounds the memory of one sampling pass."""
    temperature: float = 1.0
    """Rollout sampling temperature (validation is greedy)."""
    top_p: float = 1.0
    """Rollout nucleus sampling."""
    max_new_tokens: int = 256
    """Longest answer (monologue plus tool call) sampled per step."""
    dynamic_sampling: bool = True
    """Drop groups whose rewards are all equal (no signal) and refill the batch."""
    std_eps: float = 1e-6
    """A group is kept when the std of its rewards exceeds this; also the epsilon of the advantages."""
    max_sample_rounds: int = 4
    """Dynamic sampling over-samples up to this many batches of prompts to fill one batch."""

    # reward
    metric: Literal["difflib", "lcs"] = "difflib"
    """Similarity of the answer's call to the expert's: difflib's ratio (the paper) or the exact LCS ratio."""
    granularity: Literal["string", "fields"] = "string"
    """Compare the rendered calls as one string, or the tool name and each argument separately."""
    autojunk: bool = False
    """difflib's autojunk heuristic: off (measured to rank near-misses of long edits better, see
    reward.py); true is the paper-literal `SequenceMatcher(None, a, b)` (the paper does not say)."""

    # model options
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights; checkpoints also hold the merged model."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                    "gate_proj", "up_proj", "down_proj"])
    """Modules that get adapters (all of Qwen2's linear layers)."""
    bf16: bool | None = None
    """bf16 compute (autocast, or the FSDP2/DeepSpeed mixed-precision policy) with fp32 master weights and
    optimizer state; default on CUDA, off on CPU. A LoRA model's frozen base weights are stored in bf16."""
    logprob_chunk_tokens: int = 1024
    """Completion positions per chunk through the LM head and log-softmax in the update: bounds the fp32
    logits alive at once to chunk x vocabulary (see train/logprobs.py)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = "sdpa"
    """Attention kernels (flash_attention_2 needs the flash-attn package and a GPU)."""
    update_layout: Literal["auto", "padded", "padding_free", "shared_prefix"] = "auto"
    """How a GRPO update lays out its sequences (see train/batching.py): `padding_free` packs a
    micro-batch into one row; `shared_prefix` runs each group's prompt once for its G completions.
    `auto`: padding_free with flash_attention_2 (variable-length kernels); else shared_prefix, except
    with gradient checkpointing (which drops the KV cache), LoRA dropout (one mask would serve all G
    completions) or a model with non-attention layers, which get padded."""

    # RLVR (method rlvr or srl+rlvr)
    tasks: str | None = None
    """RLVR's training tasks: a swebench-5 instances file (each with `image` and `eval_script`); default
    swe-mini's `train` split (envs/swe-mini/splits.json), so its `test` tasks stay held out."""
    rlvr_batch_size: int = 2
    """Tasks per RLVR step (after dynamic sampling), each played `episodes.group_size` times."""
    rlvr_lr: float | None = None
    """Learning rate of RLVR steps (None: lr). The tiny model wanted a smaller one than SRL's (README: "RLVR
    learns")."""
    rlvr_every: int = 2
    """srl+rlvr: after the warm-up and `rlvr_after` SRL steps, every `rlvr_every`-th step is an RLVR step,
    the others SRL (2: SRL, RLVR, SRL, ...; 1: RLVR only, the SRL -> RLVR curriculum)."""
    rlvr_after: int = 0
    """srl+rlvr: SRL steps after the warm-up before RLVR steps start."""
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    """How RLVR episodes run (`episodes.group_size`, `max_turns`, `max_episode_tokens`, `workers`, ...;
    srl_agent/rlvr/episodes.py). `--workers N` sets `episodes.workers`."""
    reward: EpisodeRewardConfig = field(default_factory=EpisodeRewardConfig)
    """How RLVR episodes are scored (`reward.partial_credit`, `format_penalty`, `eval_timeout`;
    srl_agent/rlvr/reward.py)."""

    # bookkeeping
    eval_every: int = 10
    """Steps between validations (and best-checkpoint updates)."""
    save_every: int = 10
    """Steps between resumable checkpoints (the newest `save_total_limit` are kept)."""
    save_total_limit: int | None = 2
    """Step checkpoints kept, the newest (null: all); best/ is kept besides. At 7B each holds a 30 GB fp32 HF
    export (15 GB in bf16) and, sharded, 91 GB of model and Adam shards."""
    export_dtype: Literal["fp32", "bf16"] = "fp32"
    """The dtype of the HF weights in checkpoints and best/ (for eval and serving). `bf16`: half the bytes; a
    resume still gets the exact fp32 weights, from a sharded run's shards, else from an fp32 copy kept in
    trainer_state.pt (there a step checkpoint grows by half; best/ keeps no copy). `fp32`: the weights as
    trained (a LoRA model's frozen bf16 base merges into bf16)."""
    wandb: bool = False
    """Also log metrics to Weights & Biases (needs `pip install wandb`)."""

    @classmethod
    def builtin(cls) -> TrainConfig:
        """configs/tiny.yaml, with its data folder found wherever srl-agent is installed."""
        from ..paths import project_dir

        cfg = cls.from_yaml(project_dir("configs") / "tiny.yaml")
        cfg.trajectories = [t if Path(t).exists() else str(project_dir(t)) for t in cfg.trajectories]
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """A YAML file of settings; a file that cannot be read or parsed is one line naming it (and the line)."""
        try:
            raw = Path(path).read_bytes()
            data = yaml.safe_load(raw.decode("utf-8"))
        except OSError as e:
            raise UserError(f"{path}: cannot read the config ({(e.strerror or str(e)).lower()})") from None
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise UserError(f"{path}: line {line}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except yaml.YAMLError as e:
            raise UserError(f"{path}: {_yaml_problem(e)}") from None
        except RecursionError:  # PyYAML's parser recurses once per nesting level (found by fuzzing)
            raise UserError(f"{path}: nested too deeply to be a config") from None
        if data is None:  # an empty file: all defaults
            data = {}
        if not isinstance(data, dict):
            what = "a list" if isinstance(data, list) else f"the value {data!r}"
            raise UserError(f"{path}: the top level must be a mapping of settings (key: value), not {what}")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        cfg = cls()
        for key, value in data.items():
            cfg.set(str(key), value, source)  # str: YAML reads a key like `1:` or `true:` as a number or bool
        return cfg

    def set(self, key: str, value: Any, source: str = "--set") -> None:
        """Set a field (dotted for `tiny_model.*`, `episodes.*`, `reward.*`), converting strings from the command
        line."""
        target, name = self, key
        if "." in key:
            head, name = key.split(".", 1)
            target = getattr(self, head, None)
            if not dataclasses.is_dataclass(target):
                raise UserError(f"{source}: unknown setting {key!r}")
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name not in fields:
            module = type(target).__module__.replace(".", "/")
            raise UserError(f"{source}: unknown setting {key!r}; the settings are the fields of "
                            f"{module}.py:{type(target).__name__}")
        hints = typing.get_type_hints(type(target))
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):  # a YAML mapping: each field set
            for sub_key, sub_value in value.items():
                self.set(f"{name}.{sub_key}", sub_value, source)
            return
        if isinstance(value, str):
            value = _parse(value, hints[name], key, source)
        setattr(target, name, _checked(value, hints[name], key, source))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "group_size", "micro_batch_size", "ppo_epochs", "max_sample_rounds",
                     "generation_batch_size", "eval_every", "save_every", "max_new_tokens",
                     "logprob_chunk_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise UserError(f"save_total_limit must be at least 1 (null keeps all), not {self.save_total_limit}")
        if self.lr_warmup_steps < 0:
            raise UserError(f"lr_warmup_steps must be at least 0, not {self.lr_warmup_steps}")
        if self.group_size < 2 and self.method in ("srl", "srl+rlvr"):
            raise UserError("group_size must be at least 2: GRPO compares rollouts within a group")
        for section in ("episodes", "reward"):  # fields set one by one skip the section's own checks: rerun them
            try:
                getattr(self, section).__post_init__()
            except ValueError as e:
                raise UserError(str(e)) from None
        if self.uses_rlvr:
            for name in ("rlvr_batch_size", "rlvr_every"):
                if getattr(self, name) < 1:
                    raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
            if self.rlvr_after < 0:
                raise UserError(f"rlvr_after must be at least 0, not {self.rlvr_after}")
            if self.episodes.group_size < 2:
                raise UserError("episodes.group_size must be at least 2: GRPO compares episodes within a group")

    @property
    def uses_rlvr(self) -> bool:
        return self.method in ("rlvr", "srl+rlvr")

    def phase(self, step: int) -> str:
        """What optimiser step `step` (0-based) does: `sft` (the method, or the warm-up), `srl` or `rlvr`."""
        if self.method == "sft" or step < self.sft_warmup_steps:
            return "sft"
        if self.method != "srl+rlvr":
            return self.method
        k = step - self.sft_warmup_steps - self.rlvr_after
        return "rlvr" if k >= 0 and (k + 1) % self.rlvr_every == 0 else "srl"

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based): its phase's, ramped by `lr_warmup_steps`."""
        phase = self.phase(step)
        lr = self.lr
        if phase == "sft" and self.method != "sft" and self.sft_warmup_lr is not None:
            lr = self.sft_warmup_lr
        elif phase == "rlvr" and self.rlvr_lr is not None:
            lr = self.rlvr_lr
        return lr * min(1.0, (step + 1) / self.lr_warmup_steps) if self.lr_warmup_steps > 0 else lr


def _members(hint: Any) -> tuple:
    """The types a field takes: (int,) for `int`, (str, NoneType) for `str | None`."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one clause: the line where parsing stopped and why."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or problem is None:  # e.g. a ReaderError (a control character): no line, a position
        return f"not valid YAML ({' '.join(str(e).split())})"
    context = f" ({e.context})" if getattr(e, "context", None) else ""
    return f"line {mark.line + 1}: {problem}{context}"


def _parse(text: str, hint: Any, key: str, source: str) -> Any:
    """A command-line string: as typed for a text field, else in YAML syntax (1e-6, true, [a, b], null)."""
    if str in _members(hint) and text.lower() not in ("null", "none"):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{source}: cannot parse {key}={text!r} ({e})") from None
    return [value] if typing.get_origin(hint) is list and not isinstance(value, list) else value


_EXPECTED = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list[str]: "a list of strings"}


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def _checked(value: Any, hint: Any, key: str, source: str) -> Any:
    """`value` as the field's type (pydantic's lax conversions: "1e-4" or 1 for a float), else a clear error."""
    try:
        return _adapter(hint).validate_python(value)
    except ValidationError:
        kind = next(m for m in _members(hint) if m is not type(None))
        if typing.get_origin(kind) is Literal:
            raise UserError(f"{source}: {key} must be one of {', '.join(typing.get_args(kind))}, not {value!r}") \
                from None
        expected = _EXPECTED.get(kind, "a mapping of its fields")
        raise UserError(f"{source}: {key} must be {expected}, not {value!r}") from None
