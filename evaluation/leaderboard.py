"""Every method against the same references: one row each, with 95% intervals, the
ceiling-normalised F and paired comparisons, as Markdown, JSON and a plot."""

from __future__ import annotations

import math
import pathlib
from dataclasses import asdict, dataclass, field

from .comparison import (CEILING, NO_UNLEARNING, difference, paired_differences, rank_correlation, replicates_of,
                         versus_ceiling)
from .intervals import CONFIDENCE, RESAMPLES, Interval
from .files import write_atomically
from .report import json_text
from .result import Result
from .retrain_clock import GATE

BASELINE = "finetune"  # the competition's baseline: every row's paired difference is taken against it


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
    intervals: dict = field(default_factory=dict)  # score -> Interval (F, final score, accuracies)
    normalised_forget_quality: Interval | None = None  # F / F_retrain, paired
    versus_baseline: Interval | None = None  # final score minus the baseline's, paired
    klom: Interval | None = None  # forget KLOM's 95th percentile (lower: closer to retraining)
    klom_versus_ceiling: Interval | None = None  # that minus the retrain row's, paired
    hyperparameters: dict = field(default_factory=dict)  # the values the method ran with

    @classmethod
    def from_result(cls, result: Result, normalised: Interval | None = None,
                    versus_baseline: Interval | None = None, klom_versus_ceiling: Interval | None = None) -> "Row":
        u, t = result.unlearned, result.timing
        return cls(
            method=result.method,
            hyperparameters=dict(result.hyperparameters),
            forget_quality=result.forget_quality,
            final_score=result.final_score,
            retain_acc=u.retain_acc,
            test_acc=u.test_acc,
            forget_acc=u.forget_acc,
            mia=result.mia.unlearned,
            unlearn_seconds=math.nan if t.unlearn_seconds is None else t.unlearn_seconds_mean,
            retrain_seconds=t.retrain_seconds,
            time_ratio=math.nan if t.unlearn_seconds is None else t.time_ratio,
            gate="-" if t.passes_gate is None else "pass" if t.passes_gate else "fail",
            intervals=dict(result.intervals),
            normalised_forget_quality=normalised,
            versus_baseline=versus_baseline,
            klom=None if result.klom is None else result.klom.sets["forget"].statistics["p95"],
            klom_versus_ceiling=klom_versus_ceiling,
        )

    @classmethod
    def failed(cls, method: str, error: str) -> "Row":
        return cls(method=method, status="failed", error=error.splitlines()[0][:300] if error else "failed")


@dataclass
class Leaderboard:
    rows: list[Row]
    pairs: list[dict]  # comparison.paired_differences of the rows that ran
    baseline: str | None  # the row every other is compared with ("vs finetune"), if it ran
    ceiling: str | None  # the retraining row, if it ran
    orders_agree: float | None = None  # rank correlation of the methods ordered by F and by forget KLOM


def build(results: list[Result], failures: dict[str, str] | None = None,
          baseline: str = BASELINE, ceiling: str = CEILING) -> Leaderboard:
    """Rows for ``results`` (and failed rows for ``failures``: name -> reason), with the
    paired comparisons: every method against the ceiling row and the baseline row."""
    by_name = {r.method: r for r in results}
    replicates = replicates_of(results)
    pairs = paired_differences(results, replicates)
    ceiling_result = by_name.get(ceiling)
    rows = []
    for result in results:
        normalised = klom_versus = None
        if ceiling_result is not None:
            placed = versus_ceiling(result, ceiling_result, replicates)
            normalised = placed.normalised_forget_quality
            klom_versus = None if placed.klom_difference is None else placed.klom_difference["forget"]
        versus = None
        if baseline in by_name and result.method != baseline:
            versus = difference(pairs, result.method, baseline)
        rows.append(Row.from_result(result, normalised, versus, klom_versus))
    with_klom = [r for r in rows if r.klom is not None and r.method not in (ceiling, NO_UNLEARNING)]
    # the methods' orders, the scale's two ends left out; F higher is better, KLOM lower
    # is: agreeing orders correlate positively
    orders_agree = rank_correlation([r.forget_quality for r in with_klom], [-r.klom.value for r in with_klom])
    rows += [Row.failed(name, reason) for name, reason in (failures or {}).items()]
    return Leaderboard(rows, pairs, baseline if baseline in by_name else None,
                       ceiling if ceiling_result is not None else None, orders_agree)


def ranked(rows: list[Row]) -> list[Row]:
    """Best final score first; failed rows last, in the order they came."""
    ok = sorted((r for r in rows if r.status == "ok"), key=lambda r: -r.final_score)
    return ok + [r for r in rows if r.status != "ok"]


def _cell(interval: Interval | None, separated_from: float | None = None, spec: str = ".3f") -> str:
    """An interval as text; bold when it excludes ``separated_from`` (separated at 95%)."""
    if interval is None:
        return "-"
    text = format(interval, spec)
    return f"**{text}**" if separated_from is not None and interval.excludes(separated_from) else text


def _columns(board: Leaderboard):
    """(header, cell of a row) for each column of the Markdown table."""
    columns = [
        ("method", lambda r: r.method),
        ("F", lambda r: _cell(r.intervals.get("forget_quality"))),
    ]
    if board.ceiling:
        columns.append((f"F / F_{board.ceiling}", lambda r: _cell(r.normalised_forget_quality, 1.0, ".2f")))
    columns.append(("final", lambda r: _cell(r.intervals.get("final_score"))))
    if board.baseline:
        columns.append((f"final - {board.baseline}", lambda r: _cell(r.versus_baseline, 0.0, "+.3f")))
    columns += [
        ("retain acc", lambda r: _cell(r.intervals.get("retain_acc"))),
        ("test acc", lambda r: _cell(r.intervals.get("test_acc"))),
        ("forget acc", lambda r: _cell(r.intervals.get("forget_acc"))),
        ("KLOM p95", lambda r: _cell(r.klom, spec=".2f")),
    ]
    if board.ceiling:
        columns.append((f"KLOM - {board.ceiling}", lambda r: _cell(r.klom_versus_ceiling, 0.0, "+.2f")))
    columns += [
        ("MIA", lambda r: f"{r.mia:.3f}"),
        ("s per run", lambda r: f"{r.unlearn_seconds:.1f}"),
        ("time ratio", lambda r: f"{r.time_ratio:.3f}"),
        ("gate", lambda r: r.gate),
    ]
    return columns


def markdown_table(board: Leaderboard | list[Row]) -> str:
    if not isinstance(board, Leaderboard):
        board = Leaderboard(board, [], None, None)
    columns = _columns(board)
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in ranked(board.rows):
        if r.status != "ok":
            lines.append(f"| {r.method} | FAILED: {r.error} |" + " |" * (len(columns) - 2))
            continue
        lines.append("| " + " | ".join(cell(r) for _, cell in columns) + " |")
    return "\n".join(lines)


def pairwise_table(board: Leaderboard) -> str:
    """Final score, row against column: ``>`` when the row is higher at 95% (the paired
    difference's interval is above 0), ``<`` when lower, ``~`` when not separated."""
    names = [r.method for r in ranked(board.rows) if r.status == "ok"]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in names:
        cells = []
        for b in names:
            d = difference(board.pairs, a, b) if a != b else None
            cells.append("" if d is None else ">" if d.low > 0 else "<" if d.high < 0 else "~")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def explanation(board: Leaderboard, context: dict) -> str:
    """What the columns mean, under the leaderboard's title."""
    lines = [f"Every score with its {CONFIDENCE:.0%} interval (forget examples and models resampled, "
             f"{RESAMPLES} resamples; README, \"The score\")."]
    if board.ceiling:
        lines.append(f"F / F_{board.ceiling}: the method's F divided by the F that retraining from scratch scores "
                     "against the same references at this N, the most any method can expect (1 = as indistinguishable "
                     "as retraining); bold when the interval excludes 1.")
    if board.baseline:
        lines.append(f"final - {board.baseline}: the paired difference in final score; bold when its interval "
                     f"excludes 0, which is what \"better than {board.baseline} at 95%\" means.")
    if any(r.klom is not None for r in board.rows):
        lines.append("KLOM p95: the 95th percentile over forget examples of the KL divergence of the unlearned models' "
                     "margins from the references' (README, \"KLOM\"): 0 for identical distributions, 11.5 for "
                     "disjoint ones; its interval resamples examples, not models."
                     + (f" KLOM - {board.ceiling}: paired, bold when it excludes 0." if board.ceiling else "")
                     + (f" The methods' orders by F and by forget KLOM correlate at {board.orders_agree:.2f} "
                        "(Spearman)." if board.orders_agree is not None and not math.isnan(board.orders_agree) else ""))
    retrain = next((r.retrain_seconds for r in board.rows if r.status == "ok"), None)
    if retrain is not None:
        lines.append(f"time ratio: seconds per run / {retrain:.1f} s, one retraining from scratch the starter kit's "
                     f"way on this machine; the gate is {context.get('gate', GATE):.0%}.")
    return "\n".join(lines)


def write_leaderboard(board: Leaderboard, out_dir, context: dict) -> pathlib.Path:
    """``leaderboard.md``, ``leaderboard.json`` and ``leaderboard.png`` under ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profile = context.get("profile", {})
    text = (f"# Leaderboard: profile {profile.get('name', '?')}, N = {profile.get('num_models', '?')}\n\n"
            f"{explanation(board, context)}\n\n{markdown_table(board)}\n")
    if len(board.pairs) > 0:
        text += ("\n## Paired comparisons of the final score\n\n``>``: the row's final score is higher than the "
                 "column's at 95% (paired), ``<``: lower, ``~``: not separated.\n\n" + pairwise_table(board) + "\n")
    write_atomically(out / "leaderboard.md", text)
    payload = {"rows": [asdict(r) for r in ranked(board.rows)], "pairs": board.pairs, "baseline": board.baseline,
               "ceiling": board.ceiling, "orders_agree_f_klom": board.orders_agree,
               "intervals": {"confidence": CONFIDENCE, "resamples": RESAMPLES}} | context
    write_atomically(out / "leaderboard.json", json_text(payload))
    plot_leaderboard(board, out / "leaderboard.png", context.get("gate", GATE))
    return out / "leaderboard.md"


def plot_leaderboard(board: Leaderboard, path, gate: float = GATE) -> None:
    """Left: each method's final score with its interval, the baseline's and the ceiling's
    values as lines. Right: forget quality (with its interval) against cost, the gate a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in ranked(board.rows) if r.status == "ok"]
    fig, (scores, cost) = plt.subplots(1, 2, figsize=(13, 0.35 * len(ok) + 3))
    for y, r in enumerate(ok):
        final = r.intervals.get("final_score", Interval(r.final_score, r.final_score, r.final_score))
        colour = ("tab:blue" if r.method == board.ceiling
                  else "tab:orange" if r.method == board.baseline else "tab:green")
        scores.errorbar(final.value, y, xerr=[[final.value - final.low], [final.high - final.value]], fmt="o",
                        color=colour, capsize=3)
        f = r.intervals.get("forget_quality", Interval(r.forget_quality, r.forget_quality, r.forget_quality))
        cost.errorbar(r.time_ratio, f.value, yerr=[[f.value - f.low], [f.high - f.value]], fmt="o", color=colour,
                      capsize=3, alpha=0.8)
        cost.annotate(r.method, (r.time_ratio, f.value), fontsize=8, xytext=(4, 3), textcoords="offset points")
    for name, style in ((board.baseline, ":"), (board.ceiling, "--")):
        row = next((r for r in ok if r.method == name), None)
        if row is not None:
            scores.axvline(row.final_score, color="grey", ls=style, lw=1, label=f"{name} {row.final_score:.3f}")
    scores.set_yticks(range(len(ok)), [r.method for r in ok])
    scores.invert_yaxis()
    scores.set(xlabel=f"final score ({CONFIDENCE:.0%} interval)", title="Final score, best first")
    if board.baseline or board.ceiling:
        scores.legend(fontsize=8)
    cost.axvline(gate, color="grey", ls="--", lw=1, label=f"{gate:.0%} efficiency gate")
    cost.set(xscale="log", xlabel="unlearning time / retraining time", ylabel=f"forget quality F ({CONFIDENCE:.0%})",
             title="Forget quality against cost")
    cost.legend(fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
