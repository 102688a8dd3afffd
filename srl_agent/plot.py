"""`srl-agent plot RUN_DIR`: training curves from metrics.jsonl as one PNG (RLVR's panels when it ran)."""

from __future__ import annotations

from pathlib import Path

from .metrics import STATUSES, read_metrics


def _series(rows: list[dict], key: str, phase: str | None = None) -> tuple[list[int], list[float]]:
    picked = [r for r in rows if key in r and (phase is None or r.get("phase") == phase)]
    return [r["step"] for r in picked], [r[key] for r in picked]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    out = Path(out) if out else Path(run_dir) / "curves.png"
    rlvr = any(r.get("phase") == "rlvr" for r in rows)
    fig, axes = plt.subplots(4 if rlvr else 2, 2, figsize=(11, 13 if rlvr else 7))
    panels = [
        (axes[0, 0], "SRL reward (held-out steps, greedy)", [("val_reward", None, "val reward"),
                                                             ("val_format_ok", None, "val well-formed")]),
        (axes[0, 1], "SRL reward (training rollouts)", [("reward_mean", "srl", "rollout mean"),
                                                        ("format_ok", "srl", "well-formed share")]),
        (axes[1, 0], "loss", [("loss", "sft", "SFT cross-entropy"), ("loss", "srl", "GRPO objective"),
                              ("loss", "rlvr", "GRPO objective (RLVR)"),
                              ("kl", "srl", "KL to the starting model")]),
        (axes[1, 1], "dynamic sampling", [("fill_ratio", "srl", "batch fill ratio"),
                                          ("dropped_groups", "srl", "dropped flat groups"),
                                          ("fill_ratio", "rlvr", "RLVR batch fill ratio"),
                                          ("dropped_groups", "rlvr", "RLVR dropped flat groups")]),
    ]
    if rlvr:
        panels += [
            (axes[2, 0], "RLVR reward (training episodes)", [("rlvr_reward_mean", "rlvr", "episode reward mean"),
                                                             ("rlvr_resolve_rate", "rlvr", "resolve rate")]),
            (axes[2, 1], "RLVR episode length", [("rlvr_episode_tokens", "rlvr", "tokens per episode")]),
            (axes[3, 0], "RLVR turns and format errors", [("rlvr_turns", "rlvr", "turns per episode"),
                                                          ("rlvr_format_errors", "rlvr", "format errors per episode")]),
            (axes[3, 1], "RLVR episode ends (count per step)", [
                (f"rlvr_status_{status}", "rlvr", status)
                for status in STATUSES]),
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
