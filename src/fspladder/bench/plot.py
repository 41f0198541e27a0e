"""curves.png of a bench: accuracy against seconds per arm, with the teacher and the thresholds as lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_bench"]


def plot_bench(bench: dict[str, Any], path: str | Path) -> None:
    """Mean final validation accuracy against pipeline and target seconds (one point per budget, ±1 std band),
    and test accuracy against pipeline seconds; the teacher's accuracy and the thresholds as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = bench["summary"]
    th = s.get("thresholds") or ({"scratch": s["target_accuracy"]} if s.get("target_accuracy") else {})
    teacher_test = (bench.get("teacher") or {}).get("test_acc")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    panels = ((axes[0], "pipeline_seconds", "val_acc", "pipeline clock"),
              (axes[1], "target_seconds", "val_acc", "target clock"),
              (axes[2], "pipeline_seconds", "test_acc", "pipeline clock"))
    for ax, clock, key, title in panels:
        for k, (arm, a) in enumerate(s["arms"].items()):
            rows = [a["budgets"][str(b)] for b in bench["budgets"] if str(b) in a["budgets"]]
            xs = [r[clock][0] for r in rows]
            ys = [r[key][0] for r in rows]
            sd = [r[key][1] for r in rows]
            # Ten colours, then the next marker: a bench of every recipe has more than ten arms.
            color, marker = f"C{k % 10}", "osD^v"[k // 10 % 5]
            ax.plot(xs, ys, marker=marker, color=color, label=arm)
            ax.fill_between(xs, [y - d for y, d in zip(ys, sd)], [y + d for y, d in zip(ys, sd)], alpha=0.15,
                            color=color)
        if key == "val_acc":
            for (name, acc), style in zip(th.items(), (":", "--")):
                ax.axhline(acc, color="black" if name == "scratch" else "tab:red", ls=style, lw=1,
                           label=f"{name} threshold {acc:.4f}")
        elif teacher_test is not None:
            ax.axhline(teacher_test, color="tab:red", ls="--", lw=1, label=f"teacher test {teacher_test:.4f}")
        ax.set_xlabel(f"training seconds ({title})")
        ax.set_ylabel(f"final {'validation' if key == 'val_acc' else 'test'} accuracy")
        ax.set_title(f"{'val' if key == 'val_acc' else 'test'} accuracy vs {title}; points = budgets", fontsize=10)
        ax.grid(alpha=0.3)
        lo = min([v[key][0] for a in s["arms"].values() for v in a["budgets"].values()] + list(th.values()))
        ax.set_ylim(bottom=max(0.0, lo - 0.02))
    # One legend beside the panels, where it hides no point: the arms and thresholds of the first panel, the
    # teacher's test line of the last.
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [(h, lb) for h, lb in zip(*axes[2].get_legend_handles_labels()) if lb not in labels]
    fig.legend(handles + [h for h, _ in extra], labels + [lb for _, lb in extra], loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
