"""The distributed engine is accelerate's: DDP, FSDP2 or DeepSpeed ZeRO-3, picked by the launch config.

    one process                    srl-agent train ...
    DDP (replicated)               accelerate launch --config_file configs/accelerate/ddp.yaml -m srl_agent.cli train
    FSDP2 (sharded)                ... --config_file configs/accelerate/fsdp2.yaml ...
    DeepSpeed ZeRO-3 (sharded)     ... --config_file configs/accelerate/zero3.yaml ...   (pip install deepspeed)

On a machine without GPUs every engine runs over gloo (FSDP2 and ZeRO-3 too, for trying a config).
FSDP2 over one process (--num_processes 1) shards nothing but runs the whole sharded path: a cluster's config
tried on one GPU, its memory measured against `train --dry-run`'s plan (benchmarks/gpu_srl_step.py).

The trainer only calls `Accelerator.prepare`, `no_sync`, `backward`, `clip_grad_norm_` and
`get_state_dict` (and `save_state`/`load_state` for the resumable state); mixed
precision (bf16 compute, fp32 master weights and optimizer state) comes from the same config: autocast
for one process or DDP, FSDP2's MixedPrecisionPolicy, DeepSpeed's bf16.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    FullyShardedDataParallelPlugin,
    InitProcessGroupKwargs,
)

from ..errors import UserError
from .config import TrainConfig
from .model import compute_bf16, pick_device


def _launch_env(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true")


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """The run's Accelerator, or one clear line when the engine config does not fit the launch."""
    if _launch_env("ACCELERATE_USE_DEEPSPEED") and importlib.util.find_spec("deepspeed") is None:
        raise UserError("the accelerate config asks for DeepSpeed, which is not installed: pip install "
                        "--no-build-isolation deepspeed, or launch with configs/accelerate/fsdp2.yaml")
    bf16, gpu = compute_bf16(cfg, pick_device()), torch.cuda.is_available()
    # DDP's forward would broadcast buffers (rotary tables, constant here) in every call: a collective that
    # processes making different numbers of forward passes (shared-prefix groups) would never match.
    handlers: list = [DistributedDataParallelKwargs(broadcast_buffers=False)]
    cpu_deepspeed = _launch_env("ACCELERATE_USE_DEEPSPEED") and not gpu
    if cpu_deepspeed:  # accelerate takes DeepSpeed only with cpu=False, and then, finding no GPU, no backend: it would
        handlers.append(InitProcessGroupKwargs(backend="gloo"))  # count one process while DeepSpeed runs several
    accelerator = Accelerator(cpu=not gpu and not cpu_deepspeed, mixed_precision="bf16" if bf16 else "no",
                              kwargs_handlers=handlers)
    if _launch_env("ACCELERATE_USE_FSDP") and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate's state turns FSDP on only for GPU-like process groups (accelerate/state.py) and would quietly
        # run DDP; its FSDP2 path itself (fully_shard, clipping, gathering) runs on gloo: a CPU run shards too.
        accelerator.state.distributed_type = PartialState().distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the launch's FSDP_* settings
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # The trainer lays out its own micro-batches and marks the last one of each step (sync_gradients);
        # DeepSpeed's own accumulation stays at 1 and clips as the run config says.
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        ds.update(train_micro_batch_size_per_gpu=cfg.compute.micro_batch_size, gradient_accumulation_steps=1,
                  gradient_clipping=cfg.optim.max_grad_norm)
        ds.pop("train_batch_size", None)
    if accelerator.distributed_type == DistributedType.FSDP and bf16:
        from torch.distributed.fsdp import MixedPrecisionPolicy

        # bf16 copies of the fp32 shards for compute; gradients reduced in fp32 (accelerate's default is bf16)
        accelerator.state.fsdp_plugin.mixed_precision_policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return accelerator


def is_sharded(accelerator: Accelerator) -> bool:
    """FSDP and ZeRO-3 run every forward as a collective: all processes must make the same calls."""
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def engine_name(accelerator: Accelerator) -> str:
    names = {DistributedType.FSDP: "FSDP2", DistributedType.DEEPSPEED: "DeepSpeed ZeRO-3",
             DistributedType.MULTI_GPU: "DDP", DistributedType.MULTI_CPU: "DDP (gloo)"}
    return names.get(accelerator.distributed_type, "one process")


def check_memory_plan(cfg: TrainConfig, accelerator: Accelerator) -> None:
    """Before any weights load: a run the memory planner (plan.py) says cannot fit these GPUs is an error."""
    if accelerator.device.type != "cuda":
        return
    from .plan import model_shape, plan_memory, render

    kinds = {DistributedType.FSDP: "fsdp2", DistributedType.DEEPSPEED: "zero3"}
    gpu_gb = torch.cuda.get_device_properties(accelerator.device).total_memory / 1e9
    plan = plan_memory(cfg, model_shape(cfg), accelerator.num_processes, gpu_gb,
                       kinds.get(accelerator.distributed_type, "ddp"))
    if not plan.fits:
        raise UserError(f"the memory plan says this run does not fit (--ignore-memory-plan runs it anyway):\n"
                        f"{render(plan)}")


def full_parameters(accelerator: Accelerator, model) -> Iterator[tuple[str, torch.Tensor]]:
    """The unwrapped model's weights under their HF names, each whole, one at a time (for a rollout engine).

    FSDP2 gathers each DTensor and ZeRO-3 each partitioned parameter as the walk reaches it (collectives
    every process joins), so at most one whole tensor is alive at a time. A LoRA model (never sharded) sends
    each adapted weight merged, made anew (base + its adapters' delta): the engine holds plain weights. Merged
    into the model in place and unmerged after, a bf16 base (LoRA on CUDA) was rounded anew at every wake.
    """
    peft = hasattr(model, "peft_config")
    walked = model.get_base_model() if peft else model
    layers = dict(walked.named_modules()) if peft else {}
    for name, param in walked.named_parameters():
        if "lora_" in name:
            continue
        plain = name.replace(".base_layer", "")
        if accelerator.distributed_type == DistributedType.DEEPSPEED:
            import deepspeed

            with deepspeed.zero.GatheredParameters([param]):
                yield plain, param.detach()
        elif name.endswith(".base_layer.weight"):  # a LoRA layer's frozen weight
            layer = layers[name.removesuffix(".base_layer.weight")]
            delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters)
            yield plain, (param.detach().float() + delta).to(param.dtype)
        else:
            yield plain, (param.full_tensor() if hasattr(param, "full_tensor") else param).detach()


@contextlib.contextmanager
def whole_weights_for_sampling(accelerator: Accelerator, model) -> Iterator[None]:
    """Within it, a sharded model's weights are gathered once and stay whole (the prepared `model`).

    Sharded engines gather a layer's weights at each call of that layer and free them after: `generate` would
    all-gather every layer for every decoded token (4-6x slower decoding on 8 GPUs). For the sampling phase,
    FSDP2 keeps each unit unsharded after its first forward, and ZeRO-3 gathers every parameter up front with
    its per-module fetch-and-release hooks taken off (as TRL's `unwrap_model_for_generation`). Afterwards the
    shards are back and so is each unit's setting. It costs the whole model in compute precision per GPU
    (the memory plan's sampling phase counts it). One process and DDP hold whole weights already.
    """
    if accelerator.distributed_type == DistributedType.FSDP:
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        resharding = [_reshards_after_forward(unit) for unit in units]
        for unit in units:
            unit.set_reshard_after_forward(False, recurse=False)
        try:
            yield
        finally:
            for unit, reshard in zip(units, resharding, strict=True):
                unit.reshard()
                unit.set_reshard_after_forward(reshard, recurse=False)
    elif accelerator.distributed_type == DistributedType.DEEPSPEED:
        import deepspeed

        offload = model.optimizer.parameter_offload  # the engine's ZeRO-3 parameter coordinator and its hooks
        with deepspeed.zero.GatheredParameters(list(model.module.parameters())):
            for hook in offload.forward_hooks + offload.backward_hooks:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
            try:
                yield
            finally:
                for param in model.module.parameters():
                    param.ds_active_sub_modules.clear()
                offload._register_deepspeed_module(offload.module)
    else:
        yield


def _reshards_after_forward(unit) -> bool:
    """An FSDP2 unit's reshard_after_forward, which torch sets but does not report: it keeps a post-forward mesh
    exactly when resharding (its param groups are `_fsdp_param_groups` from torch 2.12, one `_fsdp_param_group`
    before)."""
    state = unit._get_fsdp_state()
    groups = getattr(state, "_fsdp_param_groups", None) or [getattr(state, "_fsdp_param_group", None)]
    return any(group is not None and group.post_forward_mesh_info is not None for group in groups)
