"""Rate-accuracy tables and plots: the rows ``poscodec eval`` prints and ``make accuracy`` writes."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from .harness import protocol

__all__ = ["new_results", "format_table", "plot"]


def new_results(tier: str) -> dict:
    """The frame of a results file: where and when it was measured, and the models' rows to come."""
    return {"tier": tier, "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"), "models": {}}


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(name: str, rows: list[dict]) -> str:
    """One model's rows as text: setting, bits per weight, every metric, seconds."""
    p = protocol(name)
    keys = [k for k in p.task_metrics + p.agreement_metrics if any(k in r["metrics"] for r in rows)]
    keys += [k for r in rows for k in r["metrics"] if k not in keys and k not in p.task_metrics]
    keys = list(dict.fromkeys(keys))
    head = ["setting", "bits/w"] + keys + ["s encode/decode/run"]
    body = []
    for r in rows:
        seconds = "/".join(f"{r['seconds'][k]:.1f}" if k in r["seconds"] else "-" for k in ("encode", "decode", "run"))
        body.append([r["setting"], f"{r['bits_per_weight']:.3f}"] + [_cell(r["metrics"].get(k, "")) for k in keys]
                    + [seconds])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in [head] + body]
    return "\n".join(lines)


def plot(name: str, rows: list[dict], path: str | Path) -> Path:
    """Metric against bits per weight: the task metrics (true labels) left, agreement with float
    right; the float model as a dashed line, the codec settings as points labelled by setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = protocol(name)
    coded = sorted((r for r in rows if r["setting"] != "float"), key=lambda r: r["bits_per_weight"])
    ref = next((r for r in rows if r["setting"] == "float"), None)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, title in ((axes[0], p.task_metrics, "on true labels"),
                            (axes[1], p.agreement_metrics, "agreement with the float model")):
        for i, key in enumerate(k for k in keys if any(k in r["metrics"] for r in rows)):
            color = f"C{i}"
            pts = [(r["bits_per_weight"], r["metrics"][key]) for r in coded if key in r["metrics"]]
            if pts:
                ax.plot(*zip(*pts), "o-", color=color, label=key)
                for r, (x, y) in zip([r for r in coded if key in r["metrics"]], pts) if i == 0 else ():
                    ax.annotate(r["setting"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            if ref is not None and key in ref["metrics"]:
                ax.axhline(ref["metrics"][key], color=color, linestyle="--", linewidth=0.8)
        ax.set_xlabel("bits per weight (poscodec, quantized tensors)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{p.name}: accuracy against rate (dashed: float32)", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
