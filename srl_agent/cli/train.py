"""`srl-agent train`: SRL, SFT or RLVR from a YAML config and flags (the work: srl_agent.train)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .common import bars, console, log, out


def add_parser(sub) -> None:
    from ..train.environments import ENVIRONMENTS

    train = sub.add_parser("train", help="SRL (GRPO with dynamic sampling), SFT or RLVR (episodes in sandboxes)")
    train.add_argument("--env", default="swe", choices=list(ENVIRONMENTS),
                       help="where the examples and RLVR tasks come from, unless the config or flags say: "
                       + "; ".join(f"{e.name}: {e.description}" for e in ENVIRONMENTS.values()))
    train.add_argument("--config", help="YAML config (default: configs/tiny.yaml, CPU, minutes)")
    train.add_argument("--method", choices=["srl", "sft", "rlvr", "srl+rlvr"])
    train.add_argument("--model", help="tiny, a local path or a hub id")
    train.add_argument("--trajectories", nargs="+", metavar="PATH", help="trajectory sources or a steps.jsonl")
    train.add_argument("--output-dir")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--init-from", help="start from this checkpoint (SFT -> SRL, SRL -> RLVR)")
    train.add_argument("--tasks", metavar="FILE", help="RLVR training tasks: a swebench-5 instances file "
                       "(default: swe-mini's train split)")
    train.add_argument("--workers", type=int, help="RLVR: sandboxes run at the same time (episodes.workers)")
    train.add_argument("--executor", choices=["local", "ray"],
                       help="RLVR: sandboxes on this machine or on Ray nodes (episodes.executor)")
    train.add_argument("--address", dest="ray_address", metavar="HOST:PORT",
                       help="--executor ray: the cluster (episodes.ray_address; default RAY_ADDRESS, else a local one)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    again.add_argument("--overwrite", action="store_true",
                       help="remove an earlier run's checkpoints and metrics from --output-dir and start over")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config setting: section.key=value, e.g. optim.lr=1e-4 (see --help-config)")
    train.add_argument("--help-config", action="store_true",
                       help="print every config setting with its type, default and meaning, and exit")
    train.add_argument("--no-plot", action="store_true", help="do not write curves.png at the end")
    train.add_argument("--dry-run", action="store_true",
                       help="print the per-GPU memory plan, phase by phase (no weights load), and whether the run "
                       "fits")
    train.add_argument("--gpus", type=int, default=1, help="--dry-run: GPUs in the cluster (all nodes)")
    train.add_argument("--gpu-memory", type=float, default=80, metavar="GB", help="--dry-run: memory of one GPU")
    train.add_argument("--strategy", choices=["ddp", "fsdp2", "zero3"],
                       help="--dry-run: the distributed strategy (training engine) to plan for "
                       "(default: fsdp2 on several GPUs, else ddp)")
    train.add_argument("--ignore-memory-plan", action="store_true",
                       help="start a run even when the memory plan says it does not fit the GPUs")
    train.set_defaults(handler=cmd_train)


FLAGS = {"method": ("--method", "method"), "model": ("--model", "model"),
         "trajectories": ("--trajectories", "data.trajectories"), "output_dir": ("--output-dir", "output_dir"),
         "max_steps": ("--max-steps", "max_steps"), "seed": ("--seed", "seed"),
         "init_from": ("--init-from", "init_from"),
         "tasks": ("--tasks", "rlvr.tasks"), "workers": ("--workers", "episodes.workers"),
         "executor": ("--executor", "episodes.executor"), "ray_address": ("--address", "episodes.ray_address")}
"""Each flag (by its argparse dest): its name and the config key it sets."""


def train_config(args: argparse.Namespace):
    """The YAML config (or the built-in one), then the flags given, then each --set KEY=VALUE; then --env fills the
    data and task sources none of these set."""
    from ..train.config import TrainConfig
    from ..train.environments import apply_environment

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig.builtin()
    for dest, (flag, key) in FLAGS.items():
        if getattr(args, dest) is not None:
            cfg.set(key, getattr(args, dest), source=flag)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set needs KEY=VALUE, got {item!r}")
        cfg.set(key.strip(), value)
    apply_environment(cfg, args.env)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from ..plot import plot_run
    from ..train.distributed import engine_name
    from ..train.trainer import Trainer

    if args.help_config:
        from ..train.config import help_text

        out.print(help_text(), markup=False, highlight=False, end="")
        return 0
    cfg = train_config(args)
    if args.dry_run:
        from ..train.plan import dry_run

        report, fits = dry_run(cfg, args.gpus, args.gpu_memory, args.strategy)
        log(report)
        return 0 if fits else 1
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite, check_memory=not args.ignore_memory_plan,
                      log=log)
    if not trainer.main:  # other processes of a multi-process run work silently
        trainer.run()
        return 0
    processes = f"{trainer.world} process{'es' if trainer.world > 1 else ''}"
    console.print(f"[bold]{cfg.method.upper()}[/] {cfg.model} on {' '.join(cfg.data.trajectories)} -> {cfg.output_dir}"
                  + (f" ({processes}, {engine_name(trainer.accelerator)})" if trainer.world > 1 or trainer.sharded
                     else ""))
    console.print(f"{len(trainer.train_examples)} training steps, {len(trainer.val_examples)} held-out steps; "
                  f"{sum(p.numel() for p in trainer.model.parameters()):,} parameters on {trainer.device}")
    if trainer.tasks:
        console.print(f"{len(trainer.tasks)} RLVR tasks ({cfg.rlvr.tasks or 'swe-mini train split'}), "
                      f"{cfg.episodes.group_size} episodes each, {cfg.episodes.workers} sandboxes at a time")
    with bars(time_left=True) as progress:
        task = progress.add_task("train", total=cfg.max_steps, completed=trainer.step, info="")

        def on_step(row: dict) -> None:
            info = f"{row['phase']} loss {row.get('loss', float('nan')):.3f}"
            if row["phase"] == "srl":
                info += f" reward {row['reward_mean']:+.3f} fill {row['fill_ratio']:.2f}"
            if row["phase"] == "rlvr":
                info += (f" reward {row['rlvr_reward_mean']:+.3f} resolved {row['rlvr_resolve_rate']:.2f} "
                         f"fill {row['fill_ratio']:.2f}")
            if "val_reward" in row:
                info += f" val {row['val_reward']:+.3f}"
            info += f" {row['tokens_per_s']:.0f} tok/s"
            progress.update(task, completed=row["step"], info=info)

        summary = trainer.run(on_step)
    console.print(f"run: {summary['run_dir']}  (metrics.jsonl, tensorboard/)")
    if not args.no_plot:
        console.print(f"curves: {plot_run(summary['run_dir'])}")
    best = (f"best checkpoint: {summary['best']} (val reward {summary['best_val_reward']:+.3f})" if summary["best"]
            else "no best checkpoint (no held-out trajectories: val_trajectories=0)")
    console.print(f"{best}; latest: {summary['latest']}")
    return 0
