"""`srl-agent plot RUN_DIR`: training curves from metrics.jsonl as one PNG."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{path}: no metrics (is {run_dir} a training run folder?)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    return rows


def _series(rows: list[dict], key: str, phase: str | None = None) -> tuple[list[int], list[float]]:
    picked = [r for r in rows if key in r and (phase is None or r.get("phase") == phase)]
    return [r["step"] for r in picked], [r[key] for r in picked]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [
        (axes[0, 0], "SRL reward (held-out steps, greedy)", [("val_reward", None, "val reward"),
                                                             ("val_format_ok", None, "val well-formed")]),
        (axes[0, 1], "SRL reward (training rollouts)", [("reward_mean", "srl", "rollout mean"),
                                                        ("format_ok", "srl", "well-formed share")]),
        (axes[1, 0], "loss", [("loss", "sft", "SFT cross-entropy"), ("loss", "srl", "GRPO objective"),
                              ("kl", "srl", "KL to the starting model")]),
        (axes[1, 1], "dynamic sampling", [("fill_ratio", "srl", "batch fill ratio"),
                                          ("dropped_groups", "srl", "dropped flat groups")]),
    ]
    for ax, title, series in panels:
        for key, phase, label in series:
            xs, ys = _series(rows, key, phase)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(f"{Path(run_dir).name}: {len([r for r in rows if 'phase' in r])} steps")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out
