"""One evaluation's result, as types: what the judge builds and the report writes.

Frozen dataclasses, built once by ``judge.py`` and never changed afterwards (placing a
result against the ceiling makes a new one). What can be derived from the numbers kept is
a property, not a field: the mean accuracies, F and the final score, the time ratio and
the gate's verdict, the metric's bucket count. ``to_json`` gives exactly the sections of
``report.json``, in their order; ``from_json`` reads them back (``--resume``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import metric
from .intervals import CONFIDENCE, RESAMPLES, SEED, Interval, SharedShift

ACCURACY_NAMES = ("retain_acc", "forget_acc", "test_acc")  # the report's order
INTERVALS_INFO = {"confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED,
                  "resampled": "forget examples and the models' shared offsets (F); models (accuracies)"}


@dataclass(frozen=True, eq=False)
class Side:
    """One kind of model (the unlearned, the retrained, the original) on the three splits:
    each model's accuracies, and every model's forget confidences ``[models, examples]``."""

    retain_acc_per_model: tuple[float, ...]
    forget_acc_per_model: tuple[float, ...]
    test_acc_per_model: tuple[float, ...]
    forget_confs: np.ndarray | None = None  # the original's are not kept

    @classmethod
    def of(cls, scores: list, confs: np.ndarray | None = None) -> "Side":
        """From ``scoring.ModelScores``, one per model."""
        return cls(*(tuple(getattr(s, name) for s in scores) for name in ACCURACY_NAMES), confs)

    @property
    def retain_acc(self) -> float:
        return float(np.mean(self.retain_acc_per_model))

    @property
    def forget_acc(self) -> float:
        return float(np.mean(self.forget_acc_per_model))

    @property
    def test_acc(self) -> float:
        return float(np.mean(self.test_acc_per_model))

    def per_model(self, name: str) -> np.ndarray:
        """``name``'s accuracies (``retain_acc``, ``forget_acc`` or ``test_acc``), one per model."""
        return np.asarray(getattr(self, f"{name}_per_model"), dtype=np.float64)

    def to_json(self) -> dict:
        out = {}
        for name in ACCURACY_NAMES:
            out[name] = getattr(self, name)
            out[f"{name}_per_model"] = list(getattr(self, f"{name}_per_model"))
        if self.forget_confs is not None:
            out["forget_confs"] = self.forget_confs.tolist()
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Side":
        confs = d.get("forget_confs")
        return cls(*(tuple(d[f"{name}_per_model"]) for name in ACCURACY_NAMES),
                   None if confs is None else np.asarray(confs, dtype=np.float64))


@dataclass(frozen=True)
class Timing:
    """Each run's seconds against the gate's yardstick (one retraining the starter kit's way).
    A submission's runs may have no seconds comparable with this machine's clock: then
    ``unlearn_seconds`` is None, ``note`` says why, and there is no ratio and no verdict."""

    unlearn_seconds: tuple[float, ...] | None
    retrain_seconds: float
    retrain_clock: dict  # the clock reading's fields a report keeps (retrain_clock.REPORTED)
    gate: float
    runs_wall_seconds: float | None = None  # all N runs, every process's (a method's result)
    processes: int | None = None
    phases: dict | None = None  # wall seconds of the command's stages (a method's result)
    reference_seconds: tuple[float, ...] | None = None  # the engine's time per reference (the ceiling's result)
    note: str | None = None  # why a submission's time is not compared with the gate

    @property
    def unlearn_seconds_mean(self) -> float | None:
        return None if self.unlearn_seconds is None else float(np.mean(self.unlearn_seconds))

    @property
    def time_ratio(self) -> float | None:
        return None if self.unlearn_seconds is None else float(np.mean(self.unlearn_seconds) / self.retrain_seconds)

    @property
    def passes_gate(self) -> bool | None:
        return None if self.unlearn_seconds is None else bool(self.time_ratio <= self.gate)

    def to_json(self) -> dict:
        seconds = None if self.unlearn_seconds is None else list(self.unlearn_seconds)
        out = {"unlearn_seconds": seconds, "unlearn_seconds_mean": self.unlearn_seconds_mean,
               "retrain_seconds": self.retrain_seconds, "retrain_clock": dict(self.retrain_clock),
               "time_ratio": self.time_ratio, "gate": self.gate, "passes_gate": self.passes_gate}
        if self.runs_wall_seconds is not None:
            out |= {"runs_wall_seconds": self.runs_wall_seconds, "processes": self.processes,
                    "phases": dict(self.phases or {})}
        if self.reference_seconds is not None:
            out["reference_seconds"] = list(self.reference_seconds)
        if self.note is not None:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Timing":
        references, seconds = d.get("reference_seconds"), d["unlearn_seconds"]
        return cls(None if seconds is None else tuple(seconds), d["retrain_seconds"], dict(d["retrain_clock"]),
                   d["gate"], d.get("runs_wall_seconds"), d.get("processes"), d.get("phases"),
                   None if references is None else tuple(references), d.get("note"))


@dataclass(frozen=True)
class SubmissionOrigin:
    """Where a scored Kaggle submission came from (``submission.py``), and the time its
    notebook recorded, projected to the competition's 512 runs against its 8 hours."""

    path: str
    origin: str  # what was checked of the kit file beside the zip, or why nothing was
    recorded_seconds: tuple[float, ...] | None  # each run's, as the notebook recorded them (any device)
    recorded_device: str | None
    recorded_machine: str | None
    competition_runs: int
    competition_seconds: float

    @property
    def projected_seconds(self) -> float | None:
        """``competition_runs`` runs at the recorded mean, on the recording machine."""
        return None if self.recorded_seconds is None else float(np.mean(self.recorded_seconds)) * self.competition_runs

    def to_json(self) -> dict:
        projected = self.projected_seconds
        return {"path": self.path, "origin": self.origin,
                "recorded_seconds": None if self.recorded_seconds is None else list(self.recorded_seconds),
                "recorded_device": self.recorded_device, "recorded_machine": self.recorded_machine,
                "projected_seconds": projected, "projected_runs": self.competition_runs,
                "competition_seconds": self.competition_seconds,
                "within_competition_time": None if projected is None else projected <= self.competition_seconds}

    @classmethod
    def from_json(cls, d: dict) -> "SubmissionOrigin":
        seconds = d.get("recorded_seconds")
        return cls(d["path"], d["origin"], None if seconds is None else tuple(seconds), d.get("recorded_device"),
                   d.get("recorded_machine"), d["projected_runs"], d["competition_seconds"])


@dataclass(frozen=True)
class Mia:
    """The loss-based attack's mean accuracy per kind of model (NaN where it could not run)."""

    unlearned: float
    retrained: float
    original: float
    note: str | None = None  # why it is NaN

    def to_json(self) -> dict:
        out = {"unlearned": self.unlearned, "retrained": self.retrained, "original": self.original}
        return out | ({"note": self.note} if self.note else {})

    @classmethod
    def from_json(cls, d: dict) -> "Mia":
        def number(v):
            return math.nan if v is None else float(v)

        return cls(number(d["unlearned"]), number(d["retrained"]), number(d["original"]), d.get("note"))


@dataclass(frozen=True, eq=False)
class KlomSet:
    """KLOM on one set (``klom.py``): each example's value, and the set's 95th percentile,
    median and mean with their intervals over examples."""

    values: np.ndarray  # float64, one per example
    statistics: dict  # "p95", "median", "mean" -> Interval

    def to_json(self) -> dict:
        return {name: interval.to_json() for name, interval in self.statistics.items()}


@dataclass(frozen=True, eq=False)
class Klom:
    """KLOM of the unlearned models against the references on the forget, retain and test sets."""

    sets: dict  # "forget", "retain", "test" -> KlomSet

    def to_json(self) -> dict:
        return ({name: s.to_json() for name, s in self.sets.items()}
                | {f"{name}_values": s.values.tolist() for name, s in self.sets.items()})

    @classmethod
    def from_json(cls, d: dict) -> "Klom":
        names = [k for k in d if not k.endswith("_values")]
        return cls({name: KlomSet(np.asarray(d[f"{name}_values"], dtype=np.float64),
                                  {stat: Interval.from_json(v) for stat, v in d[name].items()}) for name in names})


@dataclass(frozen=True)
class Agreement:
    """Where F's per-example verdict and KLOM's meet on the forget set: their rank correlation,
    and how many examples each calls indistinguishable from retraining (F: epsilon in bucket 0,
    below 0.5; KLOM: at most the ``retrain`` row's 95th percentile, ``klom_threshold``)."""

    rank_correlation: float  # Spearman, epsilon against KLOM over the forget examples
    klom_threshold: float
    both: int  # indistinguishable by both
    f_only: int  # by F, not by KLOM
    klom_only: int
    neither: int

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict) -> "Agreement":
        return cls(**d)


@dataclass(frozen=True)
class Ceiling:
    """A result placed against retraining scored as a method on the same references."""

    method: str
    forget_quality: Interval  # the ceiling's own F
    normalised_forget_quality: Interval  # F / F_ceiling, paired
    forget_quality_difference: Interval  # F - F_ceiling, paired
    klom_difference: dict | None = None  # set -> its KLOM 95th percentile minus the ceiling's, paired
    agreement: Agreement | None = None  # F's and KLOM's verdicts on the forget examples

    def to_json(self) -> dict:
        out = {"method": self.method, "forget_quality": self.forget_quality.to_json(),
               "normalised_forget_quality": self.normalised_forget_quality.to_json(),
               "forget_quality_difference": self.forget_quality_difference.to_json()}
        if self.klom_difference is not None:
            out["klom_p95_difference"] = {k: v.to_json() for k, v in self.klom_difference.items()}
        if self.agreement is not None:
            out["agreement"] = self.agreement.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Ceiling":
        klom = d.get("klom_p95_difference")
        return cls(d["method"], *(Interval.from_json(d[k]) for k in ("forget_quality", "normalised_forget_quality",
                                                                     "forget_quality_difference")),
                   None if klom is None else {k: Interval.from_json(v) for k, v in klom.items()},
                   None if d.get("agreement") is None else Agreement.from_json(d["agreement"]))


def forget_quality_of(epsilons: np.ndarray, num_models: int) -> float:
    return float(metric.epsilon_points(epsilons, num_models).mean())


def final_score_of(forget_quality: float, unlearned: Side, retrained: Side) -> float:
    return metric.final_score(forget_quality, list(unlearned.retain_acc_per_model),
                              list(unlearned.test_acc_per_model), list(retrained.retain_acc_per_model),
                              list(retrained.test_acc_per_model))


@dataclass(frozen=True, eq=False)
class Result:
    """One method's N runs scored against the N references."""

    method: str
    epsilons: np.ndarray  # float64, one per forget example
    unlearned: Side
    retrained: Side
    original: Side
    original_seconds: float  # the original's training time
    mia: Mia
    timing: Timing
    shared_shift: SharedShift | None  # the runs' offsets common to every forget example (intervals)
    intervals: dict = field(default_factory=dict)  # name -> Interval: F, final score, each side's accuracies
    ceiling: Ceiling | None = None
    hyperparameters: dict = field(default_factory=dict)  # the values the method ran with
    round_log: list | None = None  # per run, the method's own round_log where it keeps one
    submission: SubmissionOrigin | None = None  # a scored Kaggle submission's origin and recorded time
    klom: Klom | None = None  # the second audit, on the same models

    @property
    def num_models(self) -> int:
        return len(self.unlearned.retain_acc_per_model)

    @property
    def forget_quality(self) -> float:
        return forget_quality_of(self.epsilons, self.num_models)

    @property
    def final_score(self) -> float:
        return final_score_of(self.forget_quality, self.unlearned, self.retrained)

    @property
    def metric_info(self) -> dict:
        return {"max_measurable_epsilon": metric.max_measurable_epsilon(self.num_models),
                "bucket_count": metric.bucket_count(self.num_models), "mean_epsilon": float(np.mean(self.epsilons)),
                "intervals": INTERVALS_INFO,
                "shared_shift": None if self.shared_shift is None else self.shared_shift.to_json()}

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "num_models": self.num_models,
            "forget_quality": self.forget_quality,
            "final_score": self.final_score,
            "epsilons": self.epsilons.tolist(),
            "unlearned": self.unlearned.to_json(),
            "retrained": self.retrained.to_json(),
            "original": self.original.to_json() | {"train_seconds": self.original_seconds},
            "mia": self.mia.to_json(),
            "timing": self.timing.to_json(),
            "metric_info": self.metric_info,
            "intervals": {name: interval.to_json() for name, interval in self.intervals.items()},
            "ceiling": None if self.ceiling is None else self.ceiling.to_json(),
            "hyperparameters": dict(self.hyperparameters),
            "round_log": self.round_log,
            "klom": None if self.klom is None else self.klom.to_json(),
        } | ({} if self.submission is None else {"submission": self.submission.to_json()})

    @classmethod
    def from_json(cls, report: dict) -> "Result":
        """A result from its report (``report.read_report``'s dictionary, arrays put back)."""
        shift = report["metric_info"]["shared_shift"]
        return cls(
            method=report["method"],
            epsilons=np.asarray(report["epsilons"], dtype=np.float64),
            unlearned=Side.from_json(report["unlearned"]),
            retrained=Side.from_json(report["retrained"]),
            original=Side.from_json(report["original"]),
            original_seconds=report["original"]["train_seconds"],
            mia=Mia.from_json(report["mia"]),
            timing=Timing.from_json(report["timing"]),
            shared_shift=None if shift is None else SharedShift.from_json(shift),
            intervals={name: Interval.from_json(v) for name, v in report["intervals"].items()},
            ceiling=None if report.get("ceiling") is None else Ceiling.from_json(report["ceiling"]),
            hyperparameters=dict(report.get("hyperparameters") or {}),
            round_log=report.get("round_log"),
            submission=None if report.get("submission") is None else SubmissionOrigin.from_json(report["submission"]),
            klom=None if report.get("klom") is None else Klom.from_json(report["klom"]),
        )
