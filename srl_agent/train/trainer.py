"""The training loop, top to bottom: sample, score, filter, update; validate; checkpoint.

    for step in steps:
        phase = cfg.phase(step)   sft (the method or the warm-up) | srl | rlvr (srl+rlvr: every rlvr.every-th)
        sft:  imitate the expert's step (cross-entropy)
        srl:  rollouts = G completions for each of batch_size prompts, refilled by dynamic sampling
              rewards  = SRL reward of each completion against the expert's call
              update   = GRPO clipped objective on the group advantages
        rlvr: episodes = G agent runs in sandboxes for each of rlvr.batch_size tasks, refilled likewise
              rewards  = the task's tests in each episode's sandbox
              update   = the same GRPO update, over each turn (1/T of its episode) or whole episodes
                         (episodes.context), on the sampled tokens only
        every validation.every: mean greedy SRL reward on held-out trajectories; keep the best checkpoint
        every checkpointing.every: checkpoint (resume continues with the same data and task order and RNG state)

With grpo.async_steps = k > 0, the srl and rlvr steps' rollouts are sampled up to k steps ahead, on a thread, while
earlier steps update (async_rollouts.py), and their loss corrects for the staleness (grpo.decoupled_objective).

Rollouts reach the update as a `RolloutBatch` (grpo.py: prompt ids, completion ids and mask, advantages), laid
out into `MicroBatch`es (tokens, advantages, loss weight, old log-probs). Metrics go to metrics.jsonl and through
accelerate's trackers (`log_with`: TensorBoard, and W&B with `wandb: true`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.tracking import TensorBoardTracker, WandBTracker
from accelerate.utils import DistributedType, gather_object

from ..chat import expert_answer
from ..errors import UserError
from ..executor import connect_ray
from ..jsonio import atomic_writer
from ..metrics import STATUSES, read_metrics
from ..policy import Completion, SamplingParams
from ..policy.batcher import BatchLimits
from ..policy.hf import BACKEND_CACHES, HFPolicy
from ..reward import SRLRewardConfig, srl_rewards
from ..rlvr.batch import episode_samples, group_rewards, group_samples, played
from ..rlvr.episodes import Episode, run_episodes
from ..rlvr.tasks import load_training_tasks, require_images
from ..types import StepExample
from . import grpo
from .async_rollouts import RolloutPipeline, Sampler, horizon
from .batching import Batch, Layout, chunks, forward_tokens, make_batch, supports_shared_prefix
from .checkpoint import (
    ENGINE_DIR,
    PRETRAIN_METRICS,
    PRETRAIN_STAGES,
    PRETRAINED_DIR,
    WANDB_ID_FILE,
    engine_staging,
    latest_checkpoint,
    load_state,
    previous_run,
    recover_run_dir,
    remove_previous_run,
    replace_dir,
    save_best,
    save_checkpoint,
)
from .config import TrainConfig
from .data import ExampleStream, load_examples, split_by_trajectory, training_rendering
from .distributed import (
    check_memory_plan,
    full_parameters,
    is_sharded,
    make_accelerator,
    whole_weights_for_sampling,
)
from .grpo import Group, RolloutBatch
from .model import ADAPTER_DIR, compute_bf16, load_model, require_attention_kernels, save_model
from .pretrain import pretrain, stage_names


@dataclass
class Rollout:
    """G completions sampled for one step example, and their SRL rewards."""

    example: StepExample
    prompt_ids: list[int]
    completions: list[Completion]
    rewards: list[float]

    def group(self, behaviour: bool = False) -> Group:
        """Its GRPO group; with `behaviour`, the sampler's log-prob of every completion token (rollouts sampled
        ahead of their step)."""
        return Group([(self.prompt_ids, c.token_ids) for c in self.completions], self.rewards,
                     [c.logprobs for c in self.completions] if behaviour else None)


@dataclass
class StepRollouts:
    """What an SRL or RLVR step sampled, as its update and its metrics row take it."""

    groups: list[Group]
    """The kept groups (after dynamic sampling)."""
    row: dict[str, Any]
    """The step's batch (RLVR: and every task sampled) and its sampling statistics."""
    temperature: float
    """The sampling temperature, at which the update scores the tokens."""
    versions: list[int | None]
    """The policy version that sampled each answer of the kept groups."""


@dataclass
class MicroBatch:
    """One forward and backward of an update."""

    tokens: Batch
    """Its sequences, laid out (batching.make_batch)."""
    advantages: torch.Tensor
    """[rows]; empty for SFT."""
    weight: float
    """Its share of the step's global loss (0 for a stand-in)."""
    old_logprobs: torch.Tensor | None = None
    """[rows, W-1]: the log-probs of the weights at the update's start (the sampling policy's, for on-policy
    rollouts; the proximal policy's for rollouts sampled ahead), kept fixed over ppo_epochs > 1 (None: the current
    ones)."""
    behaviour_logprobs: torch.Tensor | None = None
    """[rows, W-1]: for rollouts sampled ahead of their step (grpo.async_steps), the sampler's log-probs."""
    loss_weights: torch.Tensor | None = None
    """[rows]: each sequence's weight in the loss (RolloutBatch.loss_weights); None: all 1."""


def key(ex: StepExample) -> str:
    return f"{ex.trajectory_id}:{ex.step_index}"


def step_timings(phase: str) -> dict[str, float]:
    """A step's seconds in each part, as its metrics row reports them (`time_*`)."""
    return {"generate": 0.0, "sandbox" if phase == "rlvr" else "reward": 0.0, "update": 0.0}


def update_layout(cfg: TrainConfig, model_config, sharded: bool = False) -> Layout:
    """`auto`: padding-free with flash-attention; else shared-prefix where it gives the padded numbers
    (an attention-only model, no checkpointing dropping the cache, no LoRA dropout differing per row).
    A sharded model (FSDP2, ZeRO-3) needs the same forward passes on every process: one per micro-batch,
    where shared-prefix makes two per group."""
    shareable = supports_shared_prefix(model_config) and not cfg.compute.gradient_checkpointing and not sharded
    if cfg.compute.update_layout == "shared_prefix" and not shareable:
        raise UserError("compute.update_layout shared_prefix needs an attention-only model, no gradient checkpointing "
                        "and an unsharded engine (one process or DDP)")
    if cfg.compute.update_layout != "auto":
        return cfg.compute.update_layout
    if cfg.compute.attn_implementation == "flash_attention_2":
        return "padding_free"
    return "shared_prefix" if shareable and not (cfg.lora.enabled and cfg.lora.dropout > 0) else "padded"


class Trainer:
    """One run: set up in the order below (nothing heavy before the cheap checks), then `run()`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 log: Callable[[str], None] = print, check_memory: bool = True):
        self.cfg, self.log = cfg, log
        self.run_dir = Path(cfg.output_dir)
        set_for_method = cfg.apply_method_defaults()
        cfg.validate()
        require_attention_kernels(cfg)
        self._start_processes(check_memory)
        if self.main:  # the run's first line: what it will do
            log(f"plan: {cfg.plan()}" + (f" (set for this run: {'; '.join(set_for_method)})" if set_for_method else ""))
        self._check_run_dir(resume, overwrite)  # every process reads the same folder, so all agree
        self._check_engine_fits_run()
        self.tasks = self._load_tasks()  # and their images, before any weights load: a missing image costs nothing
        checkpoint = self._find_checkpoint(resume)
        state = load_state(checkpoint) if checkpoint else None
        self._load_model(checkpoint, state)
        examples = self._load_examples()
        self._clear_run_dir(starting_over=checkpoint is None and (overwrite or resume), keep_pretrained=resume)
        if checkpoint is None and cfg.pretrain.enabled:
            self._pretrain()
        self._set_up_sampling()
        self._set_up_data(examples)
        # The KL reference is the starting model, also after a resume: LoRA's is its own base with the adapter off
        self.ref_model = self._reference_model() if cfg.grpo.kl_coef > 0 and not cfg.lora.enabled else None
        self.step, self.best = 0, -math.inf
        self._start_trackers()
        if checkpoint:
            self._restore(checkpoint, state)
        if self.main:
            self._write_config()

    # --- setup --------------------------------------------------------------------------------

    def _start_processes(self, check_memory: bool) -> None:
        """One process, or one of several started by `accelerate launch` / torchrun: each samples its own share
        of the prompts; the engine (DDP, FSDP2, ZeRO-3: see distributed.py) syncs the gradients."""
        self.accelerator = make_accelerator(self.cfg)
        self.sharded = is_sharded(self.accelerator)
        if check_memory:
            check_memory_plan(self.cfg, self.accelerator)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        if self.cfg.batch_size % self.world:
            raise UserError(f"batch_size {self.cfg.batch_size} must divide among {self.world} processes")
        self.local_batch = self.cfg.batch_size // self.world

    def _check_engine_fits_run(self) -> None:
        cfg = self.cfg
        if cfg.uses_rlvr and self.sharded:
            raise UserError(f"--method {cfg.method} under a sharded engine is not supported (episodes end after "
                            "different numbers of turns on each process): use one process or DDP")
        if cfg.lora.enabled and self.sharded:  # generate calls the model past its sharded root: its weights stay shards
            raise UserError("LoRA with a sharded engine (FSDP2/ZeRO-3) is not supported: train LoRA with one "
                            "process or DDP (configs/accelerate/ddp.yaml)")
        if cfg.pretrain.enabled and (self.world > 1 or self.sharded):
            raise UserError("pretrain runs in one process (a model built from a config is small): start the run "
                            "without accelerate launch, or --init-from the pretrained/ folder of a "
                            "one-process run")
        if cfg.grpo.async_steps and (self.world > 1 or self.sharded):
            raise UserError("grpo.async_steps samples on a thread beside the update of one process: with several "
                            "processes or a sharded engine, use grpo.async_steps 0")
        if cfg.rollout.backend == "hf_paged" and self.sharded and self.world > 1:
            raise UserError("rollout.backend hf_paged (continuous batching) cannot sample from a model sharded over "
                            "processes: use hf or hf_static, or DDP")

    def _load_tasks(self) -> list[dict]:
        """RLVR's training tasks, their images checked (Ray: the cluster reached; its nodes check their own)."""
        cfg = self.cfg
        tasks = load_training_tasks(cfg.rlvr.tasks) if cfg.uses_rlvr else []
        if tasks and cfg.episodes.executor == "ray":
            connect_ray(cfg.episodes.ray_address)
        elif tasks and cfg.episodes.sandbox_kind == "docker":
            require_images(tasks)
        return tasks

    def _find_checkpoint(self, resume: bool) -> Path | None:
        if resume and self.main:
            recover_run_dir(self.run_dir)
        self.accelerator.wait_for_everyone()
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            self.log(f"no checkpoint in {self.run_dir}: starting from the first step")
        return checkpoint

    def _load_model(self, checkpoint: Path | None, state: dict[str, Any] | None) -> None:
        """The model (from the checkpoint when resuming) and AdamW, prepared by the engine; the tokenizer."""
        cfg = self.cfg
        random.seed(cfg.seed + self.rank)
        torch.manual_seed(cfg.seed)  # the same initial weights everywhere
        adapter = checkpoint / ADAPTER_DIR if checkpoint and cfg.lora.enabled else None
        weights = str(checkpoint) if checkpoint and not cfg.lora.enabled else None
        # A resume reads the HF weights only where they are the exact ones (an fp32 export, unsharded). Else the
        # model is built from the checkpoint's config alone, and accelerate's state fills it in (in _restore).
        model, self.tokenizer = load_model(cfg, weights=weights, adapter=str(adapter) if adapter else None,
                                           device=self.device,
                                           shape_only=weights is not None and state["engine_holds_model"])
        if self.world > 1:
            torch.manual_seed(cfg.seed + self.rank)  # but each process samples its own rollouts
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # Rollouts and validation generate with the unwrapped model (sharded engines still gather its weights).
        self.unwrapped = self.accelerator.unwrap_model(self.model)
        self._set_up_engine_state()

    def _set_up_engine_state(self) -> None:
        """What accelerate's save_state/load_state carry: the Adam state and each process's RNG, and the exact
        weights where the HF export is not them (a sharded model's shards; fp32 beside a bf16 export)."""
        cfg = self.cfg
        self.engine_holds_model = self.sharded or (cfg.checkpointing.export_dtype != "fp32" and not cfg.lora.enabled)
        if self.accelerator.distributed_type == DistributedType.FSDP:
            # each process saves its own shards (torch.distributed.checkpoint), whatever the accelerate config says:
            # FULL_STATE_DICT would gather the whole model and Adam state onto one. HF exports gather anyway
            # (get_state_dict ignores this setting). The configs go too: a full one's rank0_only would stay.
            plugin = self.accelerator.state.fsdp_plugin
            plugin.state_dict_config = plugin.optim_state_dict_config = None
            plugin.set_state_dict_type("SHARDED_STATE_DICT")
        elif not self.engine_holds_model:  # the HF export (or LoRA's adapter) is exact: no second copy
            self.accelerator.register_save_state_pre_hook(lambda models, weights, folder: weights.clear())
            self.accelerator.register_load_state_pre_hook(lambda models, folder: models.clear())

    def _load_examples(self) -> list[StepExample]:
        """The step examples, rendered as the run's checkpoints will record (rendering.json)."""
        self.rendering = training_rendering(self.cfg, self.tokenizer, self.log)
        cfg = self.cfg
        if cfg.whole_episodes and self.rendering.history is not None:
            # a steps file recorded with a window
            raise UserError(f"--method {cfg.method} with episodes.context episode plays whole episodes with the full "
                            "history in every prompt: the steps file was built with a history window (srl-agent "
                            "data build --history full, or episodes.context step)")
        return load_examples(self.cfg, self.tokenizer, self.rendering)

    def _clear_run_dir(self, starting_over: bool, keep_pretrained: bool) -> None:
        """An old run goes only now that the model and data have loaded: a typo costs nothing. A resume before the
        first checkpoint keeps the pretraining done so far."""
        if starting_over and self.main:
            remove_previous_run(self.run_dir, keep=(PRETRAINED_DIR, PRETRAIN_METRICS) if keep_pretrained else ())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator.wait_for_everyone()

    def _pretrain(self) -> None:
        """The model built from a config learns what a downloaded one brings (pretrain.py), once per run. After
        each stage the model is saved as `pretrained/`, with the stages done in its stages.json, so a resume before
        the first checkpoint goes on from the last stage done."""
        folder = self.run_dir / PRETRAINED_DIR
        record = folder / PRETRAIN_STAGES
        done = json.loads(record.read_text()) if record.exists() else []
        names = [row["stage"] for row in done]
        if done:
            saved = load_model(self.cfg, weights=str(folder), device=self.device)[0]
            self.unwrapped.load_state_dict(saved.state_dict())
        if set(stage_names(self.cfg.pretrain)) <= set(names):
            self.log(f"pretraining: done before, read back from {folder}")
            return
        if done:
            self.log(f"pretraining: resumed after stage {', '.join(names)} ({folder})")

        def save(row: dict) -> None:
            done.append(row)
            replace_dir(folder, lambda tmp: (save_model(self.unwrapped, self.tokenizer, tmp),
                                             (tmp / PRETRAIN_STAGES).write_text(json.dumps(done, indent=1))))

        pretrain(self.unwrapped, self.tokenizer, self.cfg.pretrain, self.cfg.seed, self.log,
                 self.run_dir / PRETRAIN_METRICS, done=names, after_stage=save)

    def _set_up_sampling(self) -> None:
        """The policy that samples rollouts and validation answers (HF, or a colocated vLLM engine), the update's
        layout and the SRL reward."""
        cfg = self.cfg
        self.policy = HFPolicy(self.unwrapped, self.tokenizer, self.device, synced_gpus=self.sharded and self.world > 1,
                               cache=BACKEND_CACHES.get(cfg.rollout.backend, "dynamic"))
        self.layout = update_layout(cfg, self.unwrapped.config, self.sharded)
        self.rollout = self._vllm_rollout() if cfg.rollout.backend == "vllm" else self.policy
        self.reward_cfg = SRLRewardConfig(**cfg.srl_reward.model_dump(), call_style=self.rendering.call_style)
        self._prompt_ids: dict[str, list[int]] = {}
        self.pipeline = RolloutPipeline(self.unwrapped, self.tokenizer, self.device, cfg.grpo.async_steps,
                                        self.policy.cache, self._sample_ahead) if cfg.grpo.async_steps else None

    def _set_up_data(self, examples: list[StepExample]) -> None:
        """The held-out split, and each process's share of the seeded example (and task) order."""
        cfg = self.cfg
        self.train_examples, self.val_examples = split_by_trajectory(examples, cfg.validation.trajectories, cfg.seed)
        self.val_examples = self.val_examples[: cfg.validation.examples]
        self.stream = ExampleStream(self.train_examples, cfg.seed, self.rank, self.world)
        self.task_stream = ExampleStream(self.tasks, cfg.seed, self.rank, self.world) if self.tasks else None

    def _check_run_dir(self, resume: bool, overwrite: bool) -> None:
        """A new run never mixes with an old one: its checkpoints would be pruned by name, its metrics appended."""
        if resume and overwrite:
            raise UserError("--resume continues a run and --overwrite starts it over: pass one of them")
        if overwrite:
            for name in ("model", "init_from", "tokenizer"):
                source = getattr(self.cfg, name)
                if source and Path(source).exists() and Path(source).resolve().is_relative_to(self.run_dir.resolve()):
                    raise UserError(f"--overwrite would delete {name} {source}, which lies in {self.run_dir}")
        elif not resume and (found := previous_run(self.run_dir)):
            raise UserError(f"{self.run_dir} already holds a run ({', '.join(found)}): pass --resume to continue "
                            "it, --overwrite to start it over, or another --output-dir")

    def _vllm_rollout(self):
        """A colocated vLLM engine per process (vLLM's external launcher), started from the initial weights that
        the first process writes once; it gets the trainer's current weights at every wake (sampling_phase)."""
        from ..policy.vllm import VLLMPolicy, import_vllm

        import_vllm()  # a clear error before any weights are written
        start, weights = self.run_dir / "rollout-weights", self._full_weights()
        if self.main:
            save_model(self.unwrapped, self.tokenizer, start, weights)
        self.accelerator.wait_for_everyone()
        engine = VLLMPolicy(str(start), gpu_memory_utilization=self.cfg.rollout.vllm_gpu_memory_utilization,
                            colocate=True, seed=self.cfg.seed + self.rank)
        engine.sleep()  # woken for each sampling phase (see sampling_phase)
        return engine

    def _reference_model(self):
        """The starting model for the KL penalty, frozen and whole on every process, in the compute dtype: bf16 on
        GPUs is half an fp32 copy (15 GB, not 30, beside a 7B policy), and under DeepSpeed, which runs no autocast,
        the policy's own precision. Loaded on the CPU, so the GPU never holds it in fp32."""
        dtype = torch.bfloat16 if compute_bf16(self.cfg, self.device) else torch.float32
        model, _ = load_model(self.cfg.updated({"lora.enabled": False}), device=torch.device("cpu"))
        return model.to(device=self.device, dtype=dtype).eval().requires_grad_(False)

    def _start_trackers(self) -> None:
        """accelerate's trackers (`log_with`), on the first process: TensorBoard into RUN_DIR/tensorboard, and W&B
        with `wandb: true`. Started only now that the run folder is ready (an old run's files are gone)."""
        if not self.main:
            return
        trackers: list = []
        if importlib.util.find_spec("tensorboard") is not None:
            trackers.append(TensorBoardTracker("tensorboard", self.run_dir))
        else:
            self.log("tensorboard is not installed: metrics go to metrics.jsonl only")
        if self.cfg.wandb:
            if importlib.util.find_spec("wandb") is None:
                raise UserError("wandb is not installed: pip install wandb, or set wandb=false")
            id_file = self.run_dir / WANDB_ID_FILE
            if not id_file.exists():  # a new run, or one started over: a new W&B run too
                with atomic_writer(id_file) as f:
                    f.write(f"{self.run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            trackers.append(WandBTracker("srl-agent", dir=str(self.run_dir), config=self.cfg.to_dict(),
                                         resume="allow", id=id_file.read_text().strip()))
        # Given after the Accelerator was made (it exists before the run folder is checked); accelerate reads
        # `log_with` in init_trackers only.
        self.accelerator.log_with = trackers
        self.accelerator.init_trackers("srl-agent")

    def _write_config(self) -> None:
        with atomic_writer(self.run_dir / "config.json") as f:
            json.dump(self.cfg.to_dict(), f, indent=2)

    def _restore(self, checkpoint: Path, state: dict[str, Any]) -> None:
        if len(state["processes"]) != self.world:
            raise UserError(f"{checkpoint} was written by {len(state['processes'])} processes; resume with as many")
        if self.sharded != state["sharded"]:
            written = "a sharded engine (FSDP2/ZeRO-3)" if state["sharded"] else "one process or DDP"
            raise UserError(f"{checkpoint} was written by {written}: resume with the same accelerate config")
        self.accelerator.load_state(str(checkpoint / ENGINE_DIR))  # a collective under a sharded engine
        mine = state["processes"][self.rank]
        self.stream.load_state_dict(mine["stream"])
        if self.task_stream and mine.get("task_stream"):
            self.task_stream.load_state_dict(mine["task_stream"])
        self.step, self.best = state["step"], state["best"]
        # metrics past the checkpoint (or a line cut by the kill) were never made durable: drop them
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists() and self.main:
            kept = [json.dumps(r) for r in read_metrics(self.run_dir) if r["step"] <= self.step]
            with atomic_writer(metrics) as f:
                f.write("".join(r + "\n" for r in kept))
        self.log(f"resumed from {checkpoint} at step {self.step}")

    def _full_weights(self) -> dict[str, torch.Tensor] | None:
        """A sharded model's whole state dict, gathered onto the first process (all take part); None when every
        process holds the whole model anyway."""
        return self.accelerator.get_state_dict(self.model) if self.sharded else None

    def _save_engine_state(self) -> Path:
        """accelerate's save_state (a collective: each process writes its RNG, and under a sharded engine its
        shards; the first process the rest) into a staging folder that the checkpoint then takes in."""
        folder = engine_staging(self.run_dir, self.step)
        if self.main:  # what a killed attempt left (perhaps from more processes) must not mix in
            shutil.rmtree(folder, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        # torch.save, not safetensors: safetensors leaves out a tied weight, which a strict load then misses
        self.accelerator.save_state(str(folder), safe_serialization=False)
        self.accelerator.wait_for_everyone()
        return folder

    def _state(self) -> dict[str, Any]:
        """The resumable state beside accelerate's; every process contributes its data position."""
        mine = {"stream": self.stream.state_dict(),
                "task_stream": self.task_stream.state_dict() if self.task_stream else None}
        processes = gather_object([mine]) if self.world > 1 else [mine]
        return {"step": self.step, "best": self.best, "processes": processes, "sharded": self.sharded,
                "engine_holds_model": self.engine_holds_model, "config": self.cfg.to_dict()}

    # --- sampling -----------------------------------------------------------------------------

    def prompt_ids(self, ex: StepExample) -> list[int]:
        k = key(ex)
        if k not in self._prompt_ids:
            text = self.policy.render(ex.prompt, ex.tools)
            self._prompt_ids[k] = self.policy.encode_prompts([text])[0]
        return self._prompt_ids[k]

    def sample(self, examples: list[StepExample], params: SamplingParams, timings: dict[str, float] | None = None,
               sampler: Sampler | None = None) -> list[Rollout]:
        """`params.n` completions per example and their SRL rewards, from the run's rollout policy, or from an
        async step's `sampler`, whose log-probs are kept (the update weighs each token by them)."""
        start = time.perf_counter()
        ids = [self.prompt_ids(ex) for ex in examples]
        groups = (sampler or self.rollout).generate_ids(ids, params, with_logprobs=sampler is not None,
                                                        max_sequences=self.cfg.rollout.generation_batch_size)
        middle = time.perf_counter()
        texts = [c.text for g in groups for c in g]
        experts = [ex.expert for ex, g in zip(examples, groups, strict=True) for _ in g]
        rewards = srl_rewards(texts, experts, self.reward_cfg,
                              offered=[ex.tool_names for ex, g in zip(examples, groups, strict=True) for _ in g])
        if timings is not None:
            timings["generate"] += middle - start
            timings["reward"] += time.perf_counter() - middle
        return [Rollout(ex, p, g, rewards[i * params.n:(i + 1) * params.n])
                for i, (ex, p, g) in enumerate(zip(examples, ids, groups, strict=True))]

    @contextlib.contextmanager
    def sampling_phase(self):
        """Generation and update share the GPU: the rollout engine holds memory only while it samples.

        A vLLM engine wakes with the trainer's current weights (gathered one tensor at a time) and sleeps
        again afterwards, even on an error, freeing its weights and KV cache for the update. HF generation
        samples from the trained model, whose weights a sharded engine gathers once for the phase (not once per
        token), and its cache goes back to the allocator.
        """
        if self.rollout is not self.policy:
            self.rollout.wake_up(full_parameters(self.accelerator, self.unwrapped))
            try:
                yield
            finally:
                self.rollout.sleep()
            return
        try:
            with whole_weights_for_sampling(self.accelerator, self.model):
                yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def fill_batch(self, timings: dict[str, float], sampler: Sampler | None = None) -> tuple[list[Rollout],
                                                                                           dict[str, Any]]:
        """Dynamic sampling over the global batch: keep groups whose rewards differ; each process over-samples
        its share of what is still missing (with a cap), so all make the same sampling calls. `sampler`: an async
        step's own copy of the policy (else the run's rollout policy, woken for the phase)."""
        cfg = self.cfg
        params = SamplingParams(cfg.grpo.group_size, cfg.rollout.temperature, cfg.rollout.top_p,
                                cfg.rollout.max_new_tokens)
        with self.sampling_phase() if sampler is None else contextlib.nullcontext():
            kept, sampled, rounds = grpo.dynamic_fill(
                lambda k: self.sample(self.stream.take(k), params, timings, sampler), lambda r: r.rewards,
                cfg.batch_size,
                cfg.grpo.max_sample_rounds, cfg.grpo.std_eps, cfg.grpo.dynamic_sampling, self._gather, self.rank)
        rewards = [x for r in sampled for x in r.rewards]
        n_kept, n_sampled, reward_sum, format_ok, n_rewards, tokens = self._global_sums(
            len(kept), len(sampled), sum(rewards), sum(x > -1 for x in rewards), len(rewards),
            sum(len(c.token_ids) for r in sampled for c in r.completions))
        stats = {"fill_ratio": n_kept / cfg.batch_size, "dropped_groups": int(n_sampled - n_kept),
                 "sampled_prompts": int(n_sampled), "sample_rounds": rounds, "reward_mean": reward_sum / n_rewards,
                 "format_ok": format_ok / n_rewards, "completion_tokens": int(tokens)}
        return kept, stats

    def play(self, tasks: list[dict], timings: dict[str, float], sampler: Sampler | None = None) -> list[list[Episode]]:
        """G scored episodes per task, with the current policy (or an async step's `sampler`), in their own
        sandboxes (all removed)."""
        episodes = self.cfg.episodes
        batching = BatchLimits(episodes.batch_size, episodes.batch_wait, episodes.batch_wait_share)
        start, generating = time.perf_counter(), timings["generate"]
        groups = run_episodes(sampler or self.rollout, tasks, episodes, self.rendering, self.cfg.rlvr_reward,
                              timings=timings, batching=batching)
        # the episodes' time outside generation: sandboxes and grading (asynchronous batching overlaps some of it
        # with generation, which this does not count)
        timings["sandbox"] += time.perf_counter() - start - (timings["generate"] - generating)
        return groups

    def fill_episodes(self, timings: dict[str, float], sampler: Sampler | None = None) -> tuple[
            list[list[Episode]], list[list[Episode]], dict[str, Any]]:
        """fill_batch for RLVR: episode groups of new tasks until rlvr_batch_size non-flat groups (or the cap);
        returns (kept, sampled, stats)."""
        cfg = self.cfg
        with self.sampling_phase() if sampler is None else contextlib.nullcontext():
            kept, sampled, rounds = grpo.dynamic_fill(
                lambda k: self.play(self.task_stream.take(k), timings, sampler), group_rewards, cfg.rlvr.batch_size,
                cfg.grpo.max_sample_rounds, cfg.grpo.std_eps, cfg.grpo.dynamic_sampling, self._gather, self.rank)
        every = [e for group in sampled for e in group]
        episodes = [e for group in sampled for e in played(group)]  # the means are the policy's, not the engine's
        samples = [sequence for e in episodes for sequence, _ in episode_samples(e)]
        n_kept, n_sampled, n, reward, resolved, turns, tokens, sampled_tokens, format_errors, *statuses = \
            self._global_sums(len(kept), len(sampled), len(episodes), sum(e.reward.reward for e in episodes),
                              sum(e.reward.resolved for e in episodes), sum(e.turns for e in episodes),
                              sum(len(p) + len(c) for p, c, _ in samples), sum(sum(m) for _, _, m in samples),
                              sum(e.format_errors for e in episodes),
                              *[sum(e.status == status for e in every) for status in STATUSES])
        stats = {"fill_ratio": n_kept / cfg.rlvr.batch_size, "dropped_groups": int(n_sampled - n_kept),
                 "sampled_tasks": int(n_sampled), "sample_rounds": rounds, "episodes": int(n)}
        n = max(n, 1)
        stats |= {"rlvr_reward_mean": reward / n, "rlvr_resolve_rate": resolved / n, "rlvr_turns": turns / n,
                  "rlvr_episode_tokens": tokens / n, "rlvr_format_errors": format_errors / n,
                  "completion_tokens": int(sampled_tokens),
                  **{f"rlvr_status_{status}": int(count) for status, count in zip(STATUSES, statuses, strict=True)}}
        # a sandbox that died, hung or could not be graded scores 0; the run goes on, and says why
        faults = [f"{e.instance_id}: {e.status}: {'; '.join(x for x in (e.detail, e.reward.reason) if x)}"
                  for e in every if e.detail or e.reward.reason]
        stats["episode_faults"] = [f for part in self._gather(faults) for f in part]
        if self.main:
            for fault in stats["episode_faults"]:
                self.log(f"step {self.step + 1}: episode fault (scored as unresolved): {fault}")
        return kept, sampled, stats

    def collect(self, phase: str, timings: dict[str, float], sampler: Sampler | None = None) -> StepRollouts:
        """The rollouts of an `srl` or `rlvr` step, by the run's rollout policy or an async step's `sampler` (whose
        log-probs the groups then carry)."""
        cfg, behaviour = self.cfg, sampler is not None
        if phase == "srl":
            rollouts, stats = self.fill_batch(timings, sampler)
            return StepRollouts([r.group(behaviour) for r in rollouts], {"batch": [key(r.example) for r in rollouts],
                                                                         **stats},
                                cfg.rollout.temperature, [c.policy_version for r in rollouts for c in r.completions])
        kept, sampled, stats = self.fill_episodes(timings, sampler)
        groups = [Group(s.sequences, s.rewards, s.logprobs if behaviour else None, s.rollout_of)
                  for s in map(group_samples, kept)]
        row = {"batch": [g[0].instance_id for g in kept], "tasks": [g[0].instance_id for g in sampled], **stats}
        return StepRollouts(groups, row, cfg.episodes.temperature,
                            [v for g in kept for e in played(g) for v in e.policy_versions])

    def _sample_ahead(self, step: int, sampler: Sampler) -> tuple[StepRollouts, dict[str, float]]:
        """Run on the rollout thread: the rollouts of `step`, and the seconds their sampling took."""
        phase = self.cfg.phase(step)
        timings = step_timings(phase)
        return self.collect(phase, timings, sampler), timings

    def take_rollouts(self, timings: dict[str, float]) -> StepRollouts:
        """grpo.async_steps: this step's rollouts, sampled while earlier steps updated (the first sampling step
        after a start or a checkpoint samples its own, and waits), then the launch of the steps up to the horizon
        with the current weights; the staleness of every answer, checked against the bound."""
        cfg, step, started = self.cfg, self.step, time.perf_counter()
        if not self.pipeline.is_launched(step):
            self.pipeline.launch(step, version=step)
        rollouts, sampling = self.pipeline.take(step)
        timings.update(sampling, wait=time.perf_counter() - started)
        for ahead in range(step + 1, horizon(step, cfg.grpo.async_steps, cfg.checkpointing.every, cfg.max_steps) + 1):
            if not self.pipeline.is_launched(ahead):
                self.pipeline.launch(ahead, version=step)
        staleness = [step - version for version in rollouts.versions]
        assert max(staleness, default=0) <= cfg.grpo.async_steps, f"rollouts {max(staleness)} steps stale"
        rollouts.row.update(staleness_mean=sum(staleness) / max(len(staleness), 1),
                            staleness_max=max(staleness, default=0))
        return rollouts

    def close(self) -> None:
        """Stop the rollouts sampled ahead (async_steps), if any: see RolloutPipeline.close."""
        if self.pipeline:
            self.pipeline.close()

    # --- updates ------------------------------------------------------------------------------

    def _batch(self, sequences: list[tuple[list[int], list[int]]], layout: Layout | None = None):
        return make_batch(sequences, self.policy.pad_id, self.device, layout or self.layout)

    def _logprobs(self, model, batch, temperature: float) -> torch.Tensor:
        return batch.token_logprobs(model, max(temperature, 1e-5))

    @torch.no_grad()
    def _reference_logprobs(self, batch: Batch, temperature: float) -> torch.Tensor:
        with self.accelerator.autocast():
            if self.ref_model is not None:
                return self._logprobs(self.ref_model, batch, temperature)
            with self.unwrapped.disable_adapter():  # LoRA: the frozen base is the starting model
                return self._logprobs(self.unwrapped, batch, temperature)

    def _global_sums(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        return self.accelerator.reduce(torch.tensor(values, dtype=torch.float64, device=self.device), "sum").tolist()

    def _gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in process order."""
        return [value] if self.world == 1 else gather_object([value])

    def _with_stand_ins(self, micro: list[MicroBatch], layout: Layout | None = None) -> list[MicroBatch]:
        """Every process runs as many micro-batches as the busiest one, since under DDP, FSDP2 and ZeRO-3 each
        forward and backward is a collective. One with fewer (or none: dynamic sampling kept nothing here)
        adds one-token stand-ins whose loss weighs 0."""
        busiest = max(self._gather(len(micro)))
        stand_in = MicroBatch(self._batch([([self.policy.pad_id], [self.policy.pad_id])], layout), torch.zeros(1), 0.0)
        return micro + [stand_in] * (busiest - len(micro))

    @contextlib.contextmanager
    def _micro_batch(self, last: bool):
        """DDP accumulates gradients locally and syncs them in the backward of a step's last micro-batch only.
        FSDP2 reduce-scatters every micro-batch's into the shards (skipping that would hold whole gradients)."""
        self.accelerator.sync_gradients = last  # only then do DeepSpeed and accelerate's optimizer wrapper step
        with contextlib.nullcontext() if last or self.sharded else self.accelerator.no_sync(self.model):
            yield

    def _backward(self, loss: torch.Tensor) -> None:
        # The loss is this process's share of the global mean (weighed by global totals); the engines average
        # gradients over processes, so scaling by their number turns the average into the sum of the shares.
        self.accelerator.backward(loss * self.world)

    def _optimizer_step(self) -> float:
        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.optim.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm) if norm is not None else math.nan

    def grpo_update(self, rollouts: RolloutBatch, temperature: float) -> dict[str, float]:
        """One GRPO step on SRL rollouts or RLVR episodes alike: each sequence's loss covers its scored tokens
        (a completion, or an episode's sampled ids), log-probs recomputed at the sampling `temperature`."""
        cfg = self.cfg
        total_seqs, total_tokens, total_mass = self._global_sums(len(rollouts), rollouts.scored_tokens(),
                                                                 rollouts.loss_mass(cfg.grpo.loss_norm))
        if total_seqs == 0:  # no process kept anything: no step (Adam's momentum alone would move the weights)
            return {"loss": 0.0, "grad_norm": 0.0, "update_tokens": 0}
        parts = rollouts.micro_batches(cfg.compute.micro_batch_size, self.layout)

        def share(part: RolloutBatch) -> float:  # of the global (weighted) sequences or tokens: a global mean
            return part.loss_mass(cfg.grpo.loss_norm) / total_mass

        def laid_out(part: RolloutBatch) -> MicroBatch:
            tokens = self._batch(part.sequences())
            behaviour = None if part.behaviour_logprobs is None else part.behaviour_logprob_tensor(tokens.target_mask)
            return MicroBatch(tokens, torch.tensor(part.advantages), share(part), behaviour_logprobs=behaviour,
                              loss_weights=torch.tensor(part.loss_weights))

        micro = self._with_stand_ins([laid_out(part) for part in parts])  # laid out once, reused every epoch
        if cfg.grpo.ppo_epochs > 1:  # the behaviour policy's log-probs, fixed across epochs
            with torch.no_grad():
                for m in micro:
                    m.old_logprobs = self._logprobs(self.model, m.tokens, temperature)
        losses, norms, kl = [], [], 0.0
        for _ in range(cfg.grpo.ppo_epochs):
            epoch_loss = 0.0
            for i, m in enumerate(micro):
                with self._micro_batch(last=i == len(micro) - 1):
                    mask = m.tokens.target_mask
                    logp = self._logprobs(self.model, m.tokens, temperature)
                    logp_old = m.old_logprobs if m.old_logprobs is not None else logp.detach()
                    clip, advantages = (cfg.grpo.clip_low, cfg.grpo.clip_high), m.advantages.to(self.device)
                    weights = None if m.loss_weights is None else m.loss_weights.to(self.device)
                    if m.behaviour_logprobs is None:
                        loss = grpo.clipped_objective(logp, logp_old, advantages, mask, *clip, cfg.grpo.loss_norm,
                                                      weights)
                    else:  # sampled by older weights: the ratio to the proximal ones (logp_old), reweighed
                        loss = grpo.decoupled_objective(logp, logp_old, m.behaviour_logprobs, advantages, mask, *clip,
                                                        cfg.grpo.loss_norm, weights)
                    loss = loss * m.weight
                    if cfg.grpo.kl_coef > 0:
                        ref = self._reference_logprobs(m.tokens, temperature)
                        chunk_kl = grpo.kl_penalty(logp, ref, mask) * m.weight
                        loss = loss + cfg.grpo.kl_coef * chunk_kl
                        kl += chunk_kl.item() / cfg.grpo.ppo_epochs
                    self._backward(loss)
                epoch_loss += loss.item()
            norms.append(self._optimizer_step())
            losses.append(epoch_loss)
        # each process's loss is its share of the global mean (weights divide by global totals): sum the shares
        loss, kl = self._global_sums(sum(losses) / len(losses), kl)
        row = {"loss": loss, "grad_norm": norms[-1], "update_tokens": int(total_tokens),
               "forward_tokens": cfg.grpo.ppo_epochs * sum(forward_tokens(p.sequences(), self.layout) for p in parts)}
        if cfg.grpo.kl_coef > 0:
            row["kl"] = kl  # to the starting model, normalised as the loss is
        return row

    def sft_target(self, ex: StepExample) -> list[int]:
        answer, end = expert_answer(self.tokenizer, ex.prompt, ex.tools, ex.expert_thought, ex.expert,
                                    self.rendering.call_style, self.rendering.reasoning)
        return self.policy.encode_prompts([answer + end])[0]

    def sft_update(self, examples: list[StepExample]) -> dict[str, float]:
        seqs = [(self.prompt_ids(ex), self.sft_target(ex)) for ex in examples]
        (total_tokens,) = self._global_sums(sum(len(c) for _, c in seqs))
        layout = "padded" if self.layout == "shared_prefix" else self.layout  # one answer per prompt: no sharing
        micro = self._with_stand_ins([MicroBatch(self._batch(chunk, layout), torch.zeros(0), 1 / total_tokens)
                                      for chunk in chunks(seqs, self.cfg.compute.micro_batch_size)], layout)
        total = 0.0
        for i, m in enumerate(micro):
            with self._micro_batch(last=i == len(micro) - 1):
                loss = -(m.tokens.token_logprobs(self.model) * m.tokens.target_mask).sum() * m.weight
                self._backward(loss)
            total += loss.item()
        (loss,) = self._global_sums(total)
        return {"loss": loss, "grad_norm": self._optimizer_step(), "update_tokens": int(total_tokens)}

    # --- validation ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean greedy SRL reward on the held-out trajectories' steps, shared out among the processes.

        Each process scores as many steps as the others (repeating one whose reward is not counted), so
        all make the same generation calls, which a sharded model needs; the rewards are gathered.
        """
        if not self.val_examples:
            return {}
        params = SamplingParams(1, 0.0, 1.0, self.cfg.rollout.max_new_tokens)
        mine = self.val_examples[self.rank::self.world]
        counted, share = len(mine), math.ceil(len(self.val_examples) / self.world)
        mine += (mine or self.val_examples)[:1] * (share - counted)
        rewards = []
        with self.sampling_phase():
            for batch in chunks(mine, 8):
                rewards += [r.rewards[0] for r in self.sample(batch, params)]
        rewards = [r for part in self._gather(rewards[:counted]) for r in part]
        return {"val_reward": sum(rewards) / len(rewards), "val_format_ok": sum(r > -1 for r in rewards) / len(rewards),
                "val_steps": len(rewards)}

    # --- the loop -----------------------------------------------------------------------------

    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        phase = cfg.phase(self.step)
        timings = step_timings(phase)
        lr = cfg.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        if phase == "sft":
            batch = self.stream.take(self.local_batch)
            row: dict[str, Any] = {"batch": [key(ex) for ex in batch]}
            t = time.perf_counter()
            row.update(self.sft_update(batch))
            timings["update"] = time.perf_counter() - t
        else:  # srl or rlvr
            rollouts = self.take_rollouts(timings) if self.pipeline else self.collect(phase, timings)
            row = rollouts.row
            if rollouts.groups or self.world > 1:  # every process joins the gradient sum, even with nothing kept
                t = time.perf_counter()
                batch = RolloutBatch.from_groups(rollouts.groups, cfg.grpo.std_eps)
                row.update(self.grpo_update(batch, rollouts.temperature))
                timings["update"] = time.perf_counter() - t
        elapsed = time.perf_counter() - start
        tokens = row.get("completion_tokens", 0) + row.get("update_tokens", 0)
        row.update(phase=phase, lr=lr, seconds=elapsed,
                   tokens_per_s=tokens / elapsed if elapsed else 0.0,
                   examples_per_s=len(row["batch"]) / elapsed if elapsed else 0.0,
                   **{f"time_{k}": v for k, v in timings.items()})
        return row

    def log_metrics(self, row: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.accelerator.log({k: v for k, v in row.items() if isinstance(v, int | float) and k != "step"},
                             step=row["step"])

    def run(self, on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        try:
            self._run(on_step)
        finally:  # also on Ctrl-C or an error: rollouts sampled ahead stop
            self.close()
        # the trackers finish, and the process group goes before the interpreter does (gloo's threads still
        # running at exit abort it)
        self.accelerator.end_training()
        best = self.run_dir / "best"
        return {"run_dir": str(self.run_dir), "steps": self.step, "best_val_reward": self.best,
                "best": str(best) if best.exists() else None, "latest": str(latest_checkpoint(self.run_dir))}

    def _run(self, on_step: Callable[[dict[str, Any]], None] | None) -> None:
        cfg = self.cfg
        if self.step == 0 and self.val_examples:
            self.log_metrics({"step": 0, **self.evaluate()})
        while self.step < cfg.max_steps:
            row = self.train_step()
            self.step += 1
            row["step"] = self.step
            last = self.step == cfg.max_steps
            if self.step % cfg.validation.every == 0 or last:  # every process scores its share
                row.update(self.evaluate())
                if row.get("val_reward", -math.inf) > self.best:
                    self.best = row["val_reward"]
                    info = {"step": self.step, "val_reward": self.best}
                    weights = self._full_weights()
                    if self.main:
                        save_best(self.run_dir, self.unwrapped, self.tokenizer, info, weights, self.rendering,
                                  bf16=cfg.checkpointing.export_dtype == "bf16")
            self.log_metrics(row)
            if self.step % cfg.checkpointing.every == 0 or last:
                # every process takes part in gathering these (and writes its shards under a sharded engine)
                state, weights, engine = self._state(), self._full_weights(), self._save_engine_state()
                if self.main:
                    save_checkpoint(self.run_dir, self.step, self.unwrapped, self.tokenizer, state, weights,
                                    self.rendering, engine, cfg.checkpointing.total_limit,
                                    bf16=cfg.checkpointing.export_dtype == "bf16")
            self.accelerator.wait_for_everyone()
            if on_step:
                on_step(row)
