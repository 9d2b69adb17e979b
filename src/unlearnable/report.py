"""Plots and tables of evaluation records."""

from __future__ import annotations

from pathlib import Path


def plot_curves(records: dict[str, dict], path: str | Path, title: str = "") -> None:
    """Test (solid) and train (dashed) accuracy per epoch, one colour per record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for i, (label, rec) in enumerate(records.items()):
        hist = rec["history"]
        ep = [h["epoch"] for h in hist]
        color = f"C{i}"
        if all("test_acc" in h for h in hist):
            ax.plot(ep, [100 * h["test_acc"] for h in hist], "-o", ms=3, color=color, label=f"{label} test")
        ax.plot(ep, [100 * h["train_acc"] for h in hist], "--", color=color, alpha=0.6, label=f"{label} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    from .io import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"
