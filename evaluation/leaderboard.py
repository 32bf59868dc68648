"""Every method against the same references: one row each, as Markdown, JSON and a plot."""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import asdict, dataclass

from .runner import EvaluationResult

COLUMNS = (
    ("method", "method", "{}"),
    ("forget_quality", "F", "{:.4f}"),
    ("final_score", "final", "{:.4f}"),
    ("retain_acc", "retain acc", "{:.4f}"),
    ("test_acc", "test acc", "{:.4f}"),
    ("forget_acc", "forget acc", "{:.4f}"),
    ("mia", "MIA", "{:.3f}"),
    ("unlearn_seconds", "s per run", "{:.1f}"),
    ("time_ratio", "time ratio", "{:.3f}"),
    ("gate", "gate", "{}"),
)


@dataclass
class Row:
    method: str
    status: str = "ok"
    error: str = ""
    forget_quality: float = math.nan
    final_score: float = math.nan
    retain_acc: float = math.nan
    test_acc: float = math.nan
    forget_acc: float = math.nan
    mia: float = math.nan
    unlearn_seconds: float = math.nan
    retrain_seconds: float = math.nan  # the gate's yardstick, the same in every row
    time_ratio: float = math.nan
    gate: str = "-"

    @classmethod
    def from_result(cls, result: EvaluationResult) -> "Row":
        u, t = result.unlearned, result.timing
        return cls(
            method=result.method,
            forget_quality=result.forget_quality,
            final_score=result.final_score,
            retain_acc=u["retain_acc"],
            test_acc=u["test_acc"],
            forget_acc=u["forget_acc"],
            mia=result.mia["unlearned"],
            unlearn_seconds=t["unlearn_seconds_mean"],
            retrain_seconds=t["retrain_seconds"],
            time_ratio=t["time_ratio"],
            gate="pass" if t["passes_gate"] else "fail",
        )

    @classmethod
    def failed(cls, method: str, error: str) -> "Row":
        return cls(method=method, status="failed", error=error.splitlines()[0][:300] if error else "failed")


def ranked(rows: list[Row]) -> list[Row]:
    """Best final score first; failed rows last, in the order they came."""
    ok = sorted((r for r in rows if r.status == "ok"), key=lambda r: -r.final_score)
    return ok + [r for r in rows if r.status != "ok"]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in ranked(rows):
        if r.status != "ok":
            lines.append(f"| {r.method} | FAILED: {r.error} |" + " |" * (len(COLUMNS) - 2))
            continue
        lines.append("| " + " | ".join(fmt.format(getattr(r, key)) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def write_leaderboard(rows: list[Row], out_dir, context: dict) -> pathlib.Path:
    """``leaderboard.md``, ``leaderboard.json`` and ``leaderboard.png`` under ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    profile = context.get("profile", {})
    header = f"# Leaderboard: profile {profile.get('name', '?')}, N = {profile.get('num_models', '?')}\n\n"
    retrain = next((r.retrain_seconds for r in rows if r.status == "ok"), None)
    if retrain is not None:
        header += (f"time ratio: seconds per run / {retrain:.1f} s, one retraining from scratch the starter kit's "
                   f"way on this machine; the gate is {context.get('gate', 0.2):.0%}\n\n")
    (out / "leaderboard.md").write_text(header + table + "\n")
    (out / "leaderboard.json").write_text(json.dumps({"rows": [asdict(r) for r in ranked(rows)]} | context, indent=1))
    plot_leaderboard(rows, out / "leaderboard.png", context.get("gate", 0.2))
    return out / "leaderboard.md"


def plot_leaderboard(rows: list[Row], path, gate: float = 0.2) -> None:
    """Forget quality against cost: each method a point, the gate a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in ok:
        ax.scatter(r.time_ratio, r.forget_quality, s=40 + 200 * max(r.final_score, 0), alpha=0.7)
        ax.annotate(r.method, (r.time_ratio, r.forget_quality), fontsize=8, xytext=(4, 3), textcoords="offset points")
    ax.axvline(gate, color="grey", ls="--", lw=1, label=f"{gate:.0%} efficiency gate")
    ax.set(xscale="log", xlabel="unlearning time / retraining time", ylabel="forget quality F",
           title="Methods: forget quality vs cost (marker size: final score)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
