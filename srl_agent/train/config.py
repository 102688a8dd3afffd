"""Training configuration: typed, nested pydantic models, loadable from YAML, overridable from the command line.

    TrainConfig      what to train (method, model, start), where it goes, how long, with what batch
      tiny_model     the shape of the built-from-scratch `tiny` model
      data           the trajectories (or steps file) and the prompt-length filter
      validation     the held-out trajectories and how often they are scored
      rendering      how a step becomes a prompt: history, observations, call style, system prompt
      sft_warmup     SFT steps before GRPO
      optim          AdamW, clipping and the learning-rate ramp
      grpo           groups, clipping, KL, loss normalisation and dynamic sampling
      rollout        who samples the rollouts, and how
      srl_reward     the step reward (srl_agent/reward.py)
      compute        precision, attention kernels, micro-batches and the update's memory layout
      lora           LoRA adapters
      rlvr           RLVR steps: tasks, batch, learning rate, how they mix with SRL
      episodes       how an RLVR episode runs (srl_agent/rlvr/config.py)
      rlvr_reward    how an RLVR episode is scored (srl_agent/rlvr/config.py)
      checkpointing  how often checkpoints are written, how many are kept, in what dtype

A key is `section.field`: a nested mapping in YAML, `--set section.field=value` on the command line. Every value
is checked by pydantic when it is set; a bad one, an unknown key or a key from before the sections existed
(`lr`, now `optim.lr`) is one line naming the source and the key. `srl-agent train --help-config` lists them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo

from ..errors import UserError
from ..rlvr.config import SECTION, EpisodeConfig, EpisodeRewardConfig
from ..steps import parse_history

Method = Literal["srl", "sft", "rlvr", "srl+rlvr"]

MIN_COPY_BLOCK = 8
"""The shortest block a copying row of `pretrain` repeats (train/pretrain.py)."""

MAX_ASYNC_STEPS = 4
"""The most steps rollouts may be sampled ahead of the update (grpo.async_steps): each holds a copy of the weights."""


class Section(BaseModel):
    """A group of settings: unknown keys refused, each field documented by its docstring, checked when set."""

    model_config = SECTION


class TinyModelConfig(Section):
    """A small Qwen2-architecture model built from scratch (no weights to download)."""

    hidden_size: int = Field(64, ge=1)
    """Width of the residual stream."""
    intermediate_size: int = Field(192, ge=1)
    """Width of the MLP."""
    num_hidden_layers: int = Field(2, ge=1)
    """Transformer blocks."""
    num_attention_heads: int = Field(4, ge=1)
    """Query heads."""
    num_key_value_heads: int = Field(2, ge=1)
    """Key/value heads (grouped-query attention, as Qwen2)."""
    max_position_embeddings: int = Field(4096, ge=1)
    """Context window in tokens (prompt plus completion)."""


class PretrainConfig(Section):
    """Pretraining a model built from a config (`model: tiny` or `config:`) before its first step, which a
    downloaded model does not need: language modelling on Python source, then a copying curriculum
    (train/pretrain.py says why). Its result is kept as the run's `pretrained/`, which a resume reads back."""

    lm_steps: int = Field(0, ge=0)
    """Language-model steps on the standard library's Python source (0: none)."""
    lm_seq_len: int = Field(1024, ge=16)
    """Tokens per language-model row."""
    lm_batch_size: int = Field(8, ge=1)
    """Rows per language-model step."""
    lm_lr: float = Field(3e-3, gt=0)
    """Learning rate of the language-model steps (after a 25-step linear warm-up)."""
    copy_seq_lens: list[int] = []
    """Row lengths of the copying stages, in order (empty: none). Each stage starts where the last ended, so
    copying learned in short rows carries to long ones when each length doubles the last."""
    copy_max_steps: int = Field(1000, ge=1)
    """The most steps of one copying stage. A stage that stops short of the target still prepares the next: the
    1.3M recipe model reaches 0.2-0.4 in 32-token rows and then passes 0.9 in 64-token ones."""
    copy_target: float = Field(0.9, gt=0, le=1)
    """A copying stage ends when greedy decoding continues this share of the repeats (mean of 25 steps)."""
    copy_batch_tokens: int = Field(6144, ge=1)
    """Tokens per copying step: rows = this / the row length, at most 32."""
    copy_lr: float = Field(1e-3, gt=0)
    """Learning rate of the copying steps."""

    @property
    def enabled(self) -> bool:
        return bool(self.lm_steps or self.copy_seq_lens)


class DataConfig(Section):
    """Where the SRL and SFT examples come from."""

    trajectories: list[str] = ["trajectories"]
    """Trajectory sources (any supported format), or a steps.jsonl from `srl-agent data build`."""
    max_prompt_tokens: int | None = Field(4096, ge=1)
    """Examples with longer prompts are dropped (null: keep all)."""


class ValidationConfig(Section):
    """The held-out trajectories: scored by greedy SRL reward, the best checkpoint kept by it."""

    trajectories: int = Field(2, ge=0)
    """Whole trajectories held out for validation (the paper held out 30)."""
    examples: int = Field(64, ge=0)
    """At most this many held-out steps are scored at each validation."""
    every: int = Field(10, ge=1)
    """Steps between validations (and best-checkpoint updates)."""


class RenderingConfig(Section):
    """How a step becomes a prompt and its answer (saved with every checkpoint as rendering.json, so eval renders
    the same way)."""

    history: str = "last-2"
    """Earlier steps shown in each prompt: `last-N`, `N` or `full` (RLVR with `episodes.context: episode` needs
    `full`, and sets it unless told otherwise)."""
    max_observation_chars: int = Field(4000, ge=1)
    """Tool outputs in the prompt are cut in the middle to this many characters."""
    call_style: Literal["auto", "hermes", "xml", "llama"] = "auto"
    """How the policy writes its tool call (and how examples render history calls). `auto`: what the
    tokenizer's chat template implies (Hermes <tool_call> for Qwen2.5/Qwen3 and the tiny model, Llama 3.1's
    JSON); `hermes`, `xml` (<function=...>) or `llama` choose it."""
    system_prompt: str | None = None
    """The system turn's text (default: srl_agent/chat.py's SYSTEM_PROMPT); saved with the checkpoints, so
    eval prompts the model the same way. configs/swe-paper.yaml adds a worked example of the format."""


class SFTWarmupConfig(Section):
    """SFT steps before GRPO. A model that never writes a well-formed call gets -1 for every rollout, so every
    group is flat and dynamic sampling drops it: a short warm-up gives GRPO something to rank."""

    steps: int = Field(0, ge=0)
    """SFT steps at the start of an SRL or RLVR run (part of `max_steps`). A run from `init_from` has none
    unless this is set in its own config or with --set."""
    lr: float | None = None
    """Learning rate of the warm-up (null: optim.lr; 0 freezes it). RL wants a far smaller step than
    imitation."""


class OptimConfig(Section):
    """AdamW and the gradient clipping of every step."""

    lr: float = 5e-7
    """AdamW learning rate (the paper's 5e-7 is for a 7B model; the tiny one wants far more)."""
    lr_warmup_steps: int = Field(0, ge=0)
    """The learning rate rises linearly over a run's first N steps (1/N of it at step 1; a step whose dynamic
    sampling kept nothing counts too). A fresh AdamW's first step moves every weight by about the learning
    rate, whatever the gradient's size: after init_from, that one noisy step can undo the checkpoint (seen
    at RLVR lr 2e-3)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm before each step."""


class GRPOConfig(Section):
    """The GRPO update and dynamic sampling, for SRL steps (RLVR steps take their batch and group sizes from
    `rlvr` and `episodes`, the rest from here)."""

    group_size: int = Field(8, ge=1)
    """Rollouts per prompt (G); at least 2, since GRPO compares rollouts within a group."""
    ppo_epochs: int = Field(1, ge=1)
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
    dynamic_sampling: bool = True
    """Drop groups whose rewards are all equal (no signal) and refill the batch."""
    std_eps: float = 1e-6
    """A group is kept when the std of its rewards exceeds this; also the epsilon of the advantages."""
    max_sample_rounds: int = Field(4, ge=1)
    """Dynamic sampling over-samples up to this many batches of prompts to fill one batch."""
    async_steps: int = Field(0, ge=0, le=MAX_ASYNC_STEPS)
    """Rollouts overlap the update: SRL and RLVR steps are sampled up to this many steps ahead, on a thread with
    its own copies of the weights (one per step ahead), while earlier steps update. 0: on-policy, each step samples
    with the weights it updates. Their loss is AReaL's decoupled PPO objective (train/grpo.py), which weighs each
    token by the sampler's log-prob: rollout.backend hf, hf_static or hf_paged (top_p 1), one process. No rollout
    is sampled across a checkpoint (train/async_rollouts.py); metrics log each step's staleness."""


class RolloutConfig(Section):
    """Who samples the SRL rollouts and validation answers, and how (RLVR episodes: `episodes`)."""

    backend: Literal["hf", "hf_static", "hf_paged", "vllm"] = "hf"
    """The trained model itself through transformers' `generate` (`hf`; `hf_static`: with a static KV cache,
    whose fixed shapes let transformers compile the decode step on CUDA; `hf_paged`: transformers' continuous
    batching over a paged KV cache, no padding, not for a model sharded over processes; see policy/hf.py) or a
    colocated vLLM engine that gets the trainer's weights after every update (`vllm`, needs the vllm extra and a
    GPU)."""
    vllm_gpu_memory_utilization: float = Field(0.4, gt=0, le=1)
    """Share of GPU memory the colocated vLLM engine may take (the rest trains)."""
    generation_batch_size: int = Field(64, ge=1)
    """Sequences per generate() call: bounds the memory of one sampling pass."""
    temperature: float = 1.0
    """Rollout sampling temperature (validation is greedy)."""
    top_p: float = 1.0
    """Rollout nucleus sampling."""
    max_new_tokens: int = Field(256, ge=1)
    """Longest answer (monologue plus tool call) sampled per step."""


class SRLRewardSettings(Section):
    """The SRL step reward (srl_agent/reward.py's SRLRewardConfig, whose call style comes from the rendering)."""

    metric: Literal["difflib", "lcs"] = "difflib"
    """Similarity of the answer's call to the expert's: difflib's ratio (the paper) or the exact LCS ratio."""
    granularity: Literal["string", "fields"] = "string"
    """Compare the rendered calls as one string, or the tool name and each argument separately."""
    autojunk: bool = False
    """difflib's autojunk heuristic: off (measured to rank near-misses of long edits better, see
    reward.py); true is the paper-literal `SequenceMatcher(None, a, b)` (the paper does not say)."""


class ComputeConfig(Section):
    """Precision, kernels and memory: how each forward and backward runs (the results do not depend on them,
    up to rounding)."""

    bf16: bool | None = None
    """bf16 compute (autocast, or the FSDP2/DeepSpeed mixed-precision policy) with fp32 master weights and
    optimizer state; default on CUDA, off on CPU. A LoRA model's frozen base weights are stored in bf16."""
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = "sdpa"
    """Attention kernels (flash_attention_2 needs the flash-attn package and a GPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    micro_batch_size: int = Field(16, ge=1)
    """Sequences per forward/backward; gradients accumulate over the micro-batches of a step."""
    logprob_chunk_tokens: int = Field(1024, ge=1)
    """Completion positions per chunk through the LM head and log-softmax in the update: bounds the fp32
    logits alive at once to chunk x vocabulary (see train/logprobs.py)."""
    update_layout: Literal["auto", "padded", "padding_free", "shared_prefix"] = "auto"
    """How a GRPO update lays out its sequences (see train/batching.py): `padding_free` packs a
    micro-batch into one row; `shared_prefix` runs each group's prompt once for its G completions.
    `auto`: padding_free with flash_attention_2 (variable-length kernels); else shared_prefix, except
    with gradient checkpointing (which drops the KV cache), LoRA dropout (one mask would serve all G
    completions) or a model with non-attention layers, which get padded."""


class LoraConfig(Section):
    """LoRA adapters (peft) instead of training all weights; checkpoints also hold the merged model."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = Field(16, ge=1)
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """Modules that get adapters (all of Qwen2's linear layers)."""


class RLVRConfig(Section):
    """RLVR steps (method rlvr or srl+rlvr): GRPO over agent episodes, rewarded by the task's tests (turn by turn
    in SRL's context shape, or whole: `episodes.context`)."""

    tasks: str | None = None
    """The training tasks: a swebench-5 instances file (each with `image` and `eval_script`); default
    swe-mini's `train` split (envs/swe-mini/splits.json), so its `test` tasks stay held out."""
    batch_size: int = Field(2, ge=1)
    """Tasks per RLVR step (after dynamic sampling), each played `episodes.group_size` times."""
    lr: float | None = None
    """Learning rate of RLVR steps (null: optim.lr). The tiny model wanted a smaller one than SRL's
    (docs/rlvr.md)."""
    every: int = Field(2, ge=1)
    """srl+rlvr: after the warm-up and `rlvr.after` SRL steps, every `every`-th step is an RLVR step, the
    others SRL (2: SRL, RLVR, SRL, ...; 1: RLVR only, the SRL -> RLVR curriculum)."""
    after: int = Field(0, ge=0)
    """srl+rlvr: SRL steps after the warm-up before RLVR steps start."""


class CheckpointConfig(Section):
    """Resumable step checkpoints (and best/, kept besides): HF-format weights plus the trainer's state."""

    every: int = Field(10, ge=1)
    """Steps between resumable checkpoints (the newest `total_limit` are kept)."""
    total_limit: int | None = Field(2, ge=1)
    """Step checkpoints kept, the newest (null: all); best/ is kept besides. At 7B each holds a 30 GB fp32 HF
    export (15 GB in bf16) and, sharded, 91 GB of model and Adam shards."""
    export_dtype: Literal["fp32", "bf16"] = "fp32"
    """The dtype of the HF weights in checkpoints and best/ (for eval and serving). `bf16`: half the bytes; a
    resume still gets the exact fp32 weights, from a sharded run's shards, else from an fp32 copy kept in the
    checkpoint's accelerate/ (there a step checkpoint grows by half; best/ keeps no copy). `fp32`: the weights as
    trained (a LoRA model's frozen bf16 base merges into bf16)."""


class TrainConfig(Section):
    """Everything a run needs. `srl-agent train --config X.yaml --set section.key=value` overrides fields."""

    method: Method = "srl"
    """`srl`: GRPO on the step-wise similarity reward; `sft`: token-level imitation of the expert step;
    `rlvr`: GRPO over agent episodes in sandboxes, rewarded by the task's tests; `srl+rlvr`: both in one
    run and one optimizer, mixed by `rlvr.every` / `rlvr.after`."""
    model: str = "tiny"
    """`tiny` (built from `tiny_model` with the shipped tokenizer), a local path or a hub id."""
    tokenizer: str | None = None
    """Defaults to the model's own (the shipped tiny tokenizer for `tiny`)."""
    init_from: str | None = None
    """A checkpoint to start from (chains stages: SFT -> SRL -> RLVR); such a run skips the SFT warm-up unless
    `sft_warmup.steps` is set."""
    output_dir: str = "runs/srl"
    """The run folder: checkpoints, best/, metrics.jsonl, tensorboard/, curves.png."""
    seed: int = 0
    """Seeds the initial weights, the data order, the held-out split and sampling."""
    max_steps: int = Field(100, ge=1)
    """Optimiser steps in all (SFT warm-up included)."""
    batch_size: int = Field(8, ge=1)
    """Prompts per SRL or SFT step (after dynamic sampling)."""
    wandb: bool = False
    """Also log metrics to Weights & Biases (needs `pip install wandb`)."""

    tiny_model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    rendering: RenderingConfig = Field(default_factory=RenderingConfig)
    sft_warmup: SFTWarmupConfig = Field(default_factory=SFTWarmupConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    srl_reward: SRLRewardSettings = Field(default_factory=SRLRewardSettings)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    rlvr: RLVRConfig = Field(default_factory=RLVRConfig)
    episodes: EpisodeConfig = Field(default_factory=EpisodeConfig)
    rlvr_reward: EpisodeRewardConfig = Field(default_factory=EpisodeRewardConfig)
    checkpointing: CheckpointConfig = Field(default_factory=CheckpointConfig)

    _chosen: set[str] = PrivateAttr(default_factory=set)
    """The keys the user set (their config file, flags, --set): the settings a method's defaults never override."""

    @classmethod
    def builtin(cls) -> TrainConfig:
        """configs/tiny.yaml, with its data folder found wherever srl-agent is installed. Its settings are
        defaults, not the user's choices: a method may still change them (see `apply_method_defaults`)."""
        from ..paths import project_dir

        cfg = cls.from_yaml(project_dir("configs") / "tiny.yaml")
        cfg.data.trajectories = [t if Path(t).exists() else str(project_dir(t)) for t in cfg.data.trajectories]
        cfg._chosen.clear()
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
        """Set the setting `key` (`method`, `optim.lr`, `episodes.workers`), checked by pydantic. A string is read
        as a command line writes it (YAML syntax; text fields as typed); a mapping sets a section field by field."""
        *sections, name = key.split(".")
        target: Any = self
        for depth, part in enumerate(sections):
            if part not in _fields(type(target)) or not _is_section(_fields(type(target))[part].annotation):
                raise _unknown(".".join(sections[:depth + 1]) if depth else key, source)
            target = getattr(target, part)
        fields = _fields(type(target))
        if name not in fields:
            raise _unknown(key, source)
        hint = fields[name].annotation
        if _is_section(hint):
            if not isinstance(value, dict):
                if (new := _renamed(key)) is not None:
                    raise UserError(f"{source}: {key} is now {new} ({MOVED})")
                raise UserError(f"{source}: {key} must be a mapping of its fields, not {value!r}")
            for sub_key, sub_value in value.items():
                self.set(f"{key}.{sub_key}", sub_value, source)
            return
        if isinstance(value, str):
            value = _parse(value, hint, key, source)
        try:
            setattr(target, name, value)
        except ValidationError as e:
            raise UserError(f"{source}: {_problem(e.errors()[0], key, hint)}") from None
        self._chosen.add(key)

    def updated(self, settings: dict[str, Any], source: str = "settings") -> TrainConfig:
        """A copy with each setting of `settings` ({dotted key: value}) set, as `set` does."""
        cfg = self.model_copy(deep=True)
        for key, value in settings.items():
            cfg.set(key, value, source)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def chose(self, key: str) -> bool:
        """Whether the user set `key` (or its whole section)."""
        return any(key == k or key.startswith(k + ".") for k in self._chosen)

    def method_defaults(self) -> dict[str, tuple[Any, str]]:
        """What this run's method and start need, where the user did not say: {key: (value, why)}."""
        needs: dict[str, tuple[Any, str]] = {}
        if self.init_from and self.method != "sft" and not self.chose("sft_warmup.steps"):
            needs["sft_warmup.steps"] = (0, "the run starts from a checkpoint")
        if self.whole_episodes and not self.chose("rendering.history"):
            needs["rendering.history"] = ("full", "RLVR prompts hold whole episodes")
        return needs

    def apply_method_defaults(self) -> list[str]:
        """Set what `method_defaults` names (not as the user's choice); returns `key=value (why)` for each one
        that changed a setting."""
        changed = []
        for key, (value, why) in self.method_defaults().items():
            section, _, name = key.rpartition(".")
            target = getattr(self, section) if section else self
            if getattr(target, name) != value:
                setattr(target, name, value)
                changed.append(f"{key}={value} ({why})")
        return changed

    def validate(self) -> None:
        """The rules between fields (each field's own bounds were checked when it was set)."""
        if self.grpo.group_size < 2 and self.method in ("srl", "srl+rlvr"):
            raise UserError("grpo.group_size must be at least 2: GRPO compares rollouts within a group")
        try:
            self.episodes.check()
        except ValueError as e:
            raise UserError(str(e)) from None
        if self.uses_rlvr and self.episodes.group_size < 2:
            raise UserError("episodes.group_size must be at least 2: GRPO compares episodes within a group")
        if self.grpo.async_steps and self.rollout.backend == "vllm":
            raise UserError("grpo.async_steps needs the sampler's log-probs at the sampling temperature, which the "
                            "colocated vllm engine does not report (it returns them before temperature, and sleeps "
                            "while the update runs): use rollout.backend hf, hf_static or hf_paged")
        if self.grpo.async_steps and self.rollout.backend == "hf_paged" and self.rollout.top_p < 1:
            raise UserError("grpo.async_steps with rollout.backend hf_paged needs rollout.top_p 1: its log-probs are "
                            "renormalised over the top_p nucleus, not the distribution the update scores")
        if self.pretrain.enabled and (self.init_from or not (self.model == "tiny" or self.model.startswith("config:"))):
            raise UserError("pretrain is for a model built from a config (model: tiny or config:FOLDER), not one with "
                            f"weights ({self.init_from or self.model}): set pretrain.lm_steps 0 and "
                            "pretrain.copy_seq_lens []")
        if any(n < 2 * MIN_COPY_BLOCK for n in self.pretrain.copy_seq_lens):
            raise UserError(f"pretrain.copy_seq_lens: each row length must be at least {2 * MIN_COPY_BLOCK} (a block "
                            f"of {MIN_COPY_BLOCK} tokens written twice), not {min(self.pretrain.copy_seq_lens)}")
        longest = max([*self.pretrain.copy_seq_lens, self.pretrain.lm_seq_len if self.pretrain.lm_steps else 0])
        if self.model == "tiny" and longest > self.tiny_model.max_position_embeddings:
            raise UserError(f"pretrain rows of {longest} tokens are longer than the model's context "
                            f"(tiny_model.max_position_embeddings {self.tiny_model.max_position_embeddings})")
        try:
            history = parse_history(self.rendering.history)
        except ValueError as e:
            raise UserError(f"rendering.history: {e}") from None
        if self.whole_episodes and history is not None:
            raise UserError(f"method {self.method} with episodes.context episode plays whole episodes with the full "
                            f"history in every prompt: rendering.history must be full, not "
                            f"{self.rendering.history!r} (or leave it unset, or use episodes.context step)")

    @property
    def uses_rlvr(self) -> bool:
        return self.method in ("rlvr", "srl+rlvr")

    @property
    def whole_episodes(self) -> bool:
        """RLVR trains on whole episodes as one sequence each (episodes.context `episode`), which needs the full
        history in every prompt."""
        return self.uses_rlvr and self.episodes.context == "episode"

    def phase(self, step: int) -> str:
        """What optimiser step `step` (0-based) does: `sft` (the method, or the warm-up), `srl` or `rlvr`."""
        if self.method == "sft" or step < self.sft_warmup.steps:
            return "sft"
        if self.method != "srl+rlvr":
            return self.method
        k = step - self.sft_warmup.steps - self.rlvr.after
        return "rlvr" if k >= 0 and (k + 1) % self.rlvr.every == 0 else "srl"

    def plan(self) -> str:
        """What the run will do, phase by phase: `0 SFT warm-up steps, 2 RLVR steps`."""
        phases = [self.phase(step) for step in range(self.max_steps)]
        if self.method == "sft":
            return f"{len(phases)} SFT steps"
        parts = [f"{phases.count('sft')} SFT warm-up steps"]
        parts += [f"{phases.count(p)} {p.upper()} steps" for p in ("srl", "rlvr") if p in self.method.split("+")]
        return ", ".join(parts)

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based): its phase's, ramped by `optim.lr_warmup_steps`."""
        phase = self.phase(step)
        lr = self.optim.lr
        if phase == "sft" and self.method != "sft" and self.sft_warmup.lr is not None:
            lr = self.sft_warmup.lr
        elif phase == "rlvr" and self.rlvr.lr is not None:
            lr = self.rlvr.lr
        ramp = self.optim.lr_warmup_steps
        return lr * min(1.0, (step + 1) / ramp) if ramp > 0 else lr


# --- keys -------------------------------------------------------------------------------------

RENAMED = {
    **{k: f"data.{k}" for k in ("trajectories", "max_prompt_tokens")},
    "val_trajectories": "validation.trajectories", "val_examples": "validation.examples",
    "eval_every": "validation.every",
    **{k: f"rendering.{k}" for k in ("history", "max_observation_chars", "call_style", "system_prompt")},
    "sft_warmup_steps": "sft_warmup.steps", "sft_warmup_lr": "sft_warmup.lr",
    **{k: f"optim.{k}" for k in ("lr", "lr_warmup_steps", "weight_decay", "max_grad_norm")},
    **{k: f"grpo.{k}" for k in ("group_size", "ppo_epochs", "clip_low", "clip_high", "loss_norm", "kl_coef",
                                "dynamic_sampling", "std_eps", "max_sample_rounds")},
    "rollout_backend": "rollout.backend",
    **{k: f"rollout.{k}" for k in ("vllm_gpu_memory_utilization", "generation_batch_size", "temperature", "top_p",
                                   "max_new_tokens")},
    **{k: f"srl_reward.{k}" for k in ("metric", "granularity", "autojunk")},
    **{k: f"compute.{k}" for k in ("bf16", "attn_implementation", "gradient_checkpointing", "micro_batch_size",
                                   "logprob_chunk_tokens", "update_layout")},
    "lora": "lora.enabled", "lora_r": "lora.r", "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout",
    "lora_target_modules": "lora.target_modules",
    "tasks": "rlvr.tasks", "rlvr_batch_size": "rlvr.batch_size", "rlvr_lr": "rlvr.lr", "rlvr_every": "rlvr.every",
    "rlvr_after": "rlvr.after",
    "reward": "rlvr_reward",
    "save_every": "checkpointing.every", "save_total_limit": "checkpointing.total_limit",
    "export_dtype": "checkpointing.export_dtype",
}
"""The flat keys of configs written before the sections (and `reward.*`, now `rlvr_reward.*`): each named with its
new key when met, rather than taken, so that one setting has one name."""


MOVED = "the settings are grouped in sections; srl-agent train --help-config lists them"


def _renamed(key: str) -> str | None:
    if key in RENAMED:
        return RENAMED[key]
    head, _, rest = key.partition(".")
    return f"{RENAMED[head]}.{rest}" if rest and head in RENAMED and "." not in RENAMED[head] else None


def _unknown(key: str, source: str) -> UserError:
    """One line for a key that is no setting: its new name if it is an old one, else the nearest real one."""
    if (new := _renamed(key)) is not None:
        return UserError(f"{source}: {key} is now {new} ({MOVED})")
    keys = [f.key for f in config_fields()]
    nearest = difflib.get_close_matches(key, keys, n=1) or \
        difflib.get_close_matches(key.rpartition(".")[2], [k.rpartition(".")[2] for k in keys], n=1)
    if nearest and nearest[0] not in keys:  # a field's name matched: the first key that ends in it
        nearest = [next(k for k in keys if k.rpartition(".")[2] == nearest[0])]
    hint = f"did you mean {nearest[0]}? " if nearest else ""
    return UserError(f"{source}: unknown setting {key!r} ({hint}srl-agent train --help-config lists them)")


def _fields(cls: type) -> dict[str, FieldInfo]:
    """A section's fields (a pydantic model or dataclass)."""
    return cls.__pydantic_fields__


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and hasattr(hint, "__pydantic_fields__")


# --- values -----------------------------------------------------------------------------------

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
        raise UserError(f"{source}: cannot parse {key}={text!r} ({' '.join(str(e).split())})") from None
    return [value] if typing.get_origin(hint) is list and not isinstance(value, list) else value


_EXPECTED = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list[str]: "a list of strings"}
_BOUNDS = {"greater_than_equal": ("at least", "ge"), "greater_than": ("above", "gt"),
           "less_than_equal": ("at most", "le"), "less_than": ("below", "lt")}


def _problem(error: dict, key: str, hint: Any) -> str:
    """Pydantic's error for `key` (whose type is `hint`) as one clause: what the value must be, and what it was."""
    value = error.get("input")
    if error["type"] in _BOUNDS:
        words, bound = _BOUNDS[error["type"]]
        return f"{key} must be {words} {error['ctx'][bound]}, not {value!r}"
    kind = next(m for m in _members(hint) if m is not type(None))
    if typing.get_origin(kind) is Literal:
        return f"{key} must be one of {', '.join(typing.get_args(kind))}, not {value!r}"
    return f"{key} must be {_EXPECTED.get(kind, str(kind))}, not {value!r}"


# --- the reference --------------------------------------------------------------------------

@dataclasses.dataclass
class ConfigField:
    """One setting, as `--help-config` and docs/reference/config.md list it."""

    key: str
    """Dotted: `optim.lr`."""
    type: str
    default: str
    """In YAML syntax, as a config file would write it."""
    doc: str
    section: type
    """The model that holds it (TrainConfig for the top level)."""


def config_fields(model: type = TrainConfig, prefix: str = "") -> Iterator[ConfigField]:
    """Every setting, section by section (the top level first), read from the models themselves."""
    sections = []
    for name, info in _fields(model).items():
        if _is_section(info.annotation):
            sections.append((name, info.annotation))
            continue
        default = info.get_default(call_default_factory=True)
        yield ConfigField(f"{prefix}{name}", type_name(info.annotation), yaml_text(default),
                          " ".join((info.description or "").split()), model)
    for name, section in sections:
        yield from config_fields(section, f"{prefix}{name}.")


def type_name(hint: Any) -> str:
    """`int`, `float | null`, `srl | sft | rlvr`, `list[str]`: a type as a config writer reads it."""
    if typing.get_origin(hint) is Literal:
        return " | ".join(str(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join("null" if m is type(None) else type_name(m) for m in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint)) if typing.get_origin(hint) is None else str(hint)


def yaml_text(value: Any) -> str:
    """A value as YAML writes it inline: null, true, 5.0e-07, [a, b]."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n...\n").strip()


def section_doc(section: type) -> str:
    return " ".join((section.__doc__ or "").split())


def help_text() -> str:
    """`srl-agent train --help-config`: every setting with its type, default and meaning, section by section."""
    lines: list[str] = ["Settings of srl-agent train: YAML keys of --config (nested by section) or --set "
                        "section.key=value.", ""]
    current = None
    for f in config_fields():
        if f.section is not current:
            current = f.section
            section = f.key.rpartition(".")[0] or "top level"
            lines += ["", f"[{section}] {section_doc(current)}"]
        lines.append(f"  {f.key}: {f.type} = {f.default}")
        lines.append(textwrap.fill(f.doc, 116, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines[:1] + lines[2:]) + "\n"
