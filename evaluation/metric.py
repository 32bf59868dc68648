"""The NeurIPS 2023 Machine Unlearning competition score, exact and fast.

Spec: ``shared/docs/metric.md`` (the organisers' ``metric.py``). Everything here is
a pure function: arrays in, numbers out, float64 throughout.

How the per-example epsilon is computed quickly, without changing its value:

* Every decision rule only matters through its two counts ``(tp, fp)`` (how many of
  each sample it calls positive). The epsilon of a count pair, including the
  discard and infinity rules, is tabulated once per N in an ``(N+1) x (N+1)`` table.
* Single threshold ``c >= t``: the counts only change where ``t`` crosses a sample
  value, so instead of walking the ``100 * range`` thresholds we visit the <= 2N
  gaps between sorted sample values and ask, with exact linspace arithmetic,
  whether a threshold falls inside each gap.
* Double threshold ``t_l <= c <= t_r``: the right counts of every ``t_r`` come from
  ``searchsorted`` on the sorted samples, batched over examples and rules. The
  ``400`` left thresholds of one ``t_r`` only have ``2N + 1`` possible counts (how many
  sample values lie below), so with few models each count is visited once, kept when
  a left threshold falls in its gap (as for the single threshold); with many models
  every left threshold is searched.

The thresholds are rebuilt with the same floating-point operations as
``numpy.linspace``, so a threshold that lands exactly on a sample value is counted
exactly as the literal implementation counts it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.devices import device_of, pick_device

# ---------------------------------------------------------------------------
# Constants of the competition metric (names as in the organisers' code).
DELTA = 1e-5  # the delta of (epsilon, delta)-unlearning
EPSILON_CAP = 50.0  # epsilons are clipped to [0, EPSILON_CAP]
NUM_THRESHOLDS_PER_UNIT = 100  # threshold density of both rule families
PEAKY_RATIO = 0.01  # range(smaller) / range(larger) below this: epsilon = cap
DOUBLE_THRESHOLD_BUFFER = 2.0  # the "B" of the interval family
NUM_LEFT_THRESHOLDS = int(math.ceil(2 * DOUBLE_THRESHOLD_BUFFER * NUM_THRESHOLDS_PER_UNIT))
BUCKET_WIDTH = 0.5  # forget-score buckets: [0, .5), [.5, 1), ... worth 1, 1/2, ...
MIN_MODELS = 3  # the bucket count needs ln(N - 1) >= 0.5
LOG_FLOOR = 1e-45  # added inside the logs of the logit-scaled confidence

# Rules evaluated per chunk of the double-threshold family: bounds memory
# (about 40 bytes a rule) while keeping each torch call large.
_RULES_PER_CHUNK = {"cpu": 4_000_000, "cuda": 64_000_000}


# ---------------------------------------------------------------------------
# Confidences


def logit_scaled_confidence(logits, targets) -> np.ndarray:
    """``log(p_true + 1e-45) - log(sum of the other probs + 1e-45)``, in float64.

    ``logits`` is ``[n, C]`` (numpy or torch, any float dtype), ``targets`` ``[n]``.
    Returns a float64 array of shape ``[n]``, finite for any finite logits.
    """
    logits = _to_numpy(logits).astype(np.float64, copy=True)
    targets = _to_numpy(targets).astype(np.int64, copy=False)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(
            f"logits must be [n, classes] and targets [n]; got {logits.shape} and {targets.shape}"
        )
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)  # exp() can no longer overflow
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    prob_true = probs[rows, targets]
    probs[rows, targets] = 0.0
    prob_rest = probs.sum(axis=1)
    return np.log(prob_true + LOG_FLOOR) - np.log(prob_rest + LOG_FLOOR)


# ---------------------------------------------------------------------------
# Per-example epsilons


def per_example_epsilons(unlearned_confs, retrained_confs, device=None, left_thresholds: str | None = None
                         ) -> np.ndarray:
    """Epsilon of every forget example, exactly as the competition defines it.

    Both inputs are ``[N_models, n_forget]`` (numpy or torch, CPU or CUDA). The work
    runs on ``device`` if given, else on the inputs' device if they are torch tensors,
    else on CUDA when present. Returns float64 ``[n_forget]`` in ``[0, EPSILON_CAP]``.
    ``left_thresholds`` (``"gaps"`` or ``"grid"``; default: ``left_thresholds_for(N)``)
    is how the interval family's left thresholds are enumerated: the same epsilons
    either way (tested), at different costs.
    """
    if left_thresholds not in (None, "gaps", "grid"):
        raise ValueError(f"left_thresholds must be 'gaps' or 'grid', not {left_thresholds!r}")
    unlearned, retrained = _validated_confs(unlearned_confs, retrained_confs, device)
    n_models = unlearned.shape[0]
    table = _epsilon_table(n_models, unlearned.device)

    # Example-major, each row sorted: [n_forget, N].
    unlearned = unlearned.T.sort(dim=1).values
    retrained = retrained.T.sort(dim=1).values

    # Positive sample: the one with the larger median (ties: unlearned).
    retrain_is_pos = _median_of_sorted(retrained) > _median_of_sorted(unlearned)
    pos = torch.where(retrain_is_pos[:, None], retrained, unlearned)
    neg = torch.where(retrain_is_pos[:, None], unlearned, retrained)

    pos_range = pos[:, -1] - pos[:, 0]
    neg_range = neg[:, -1] - neg[:, 0]
    pos_wider = pos_range > neg_range
    larger = torch.where(pos_wider, pos_range, neg_range)
    smaller = torch.where(pos_wider, neg_range, pos_range)
    # 0/0 (both samples constant) is NaN and, as in the reference, not peaky.
    peaky = smaller / larger < PEAKY_RATIO

    best = _best_single_threshold(pos, neg, table)
    # The interval family is only needed where the peaky guard does not decide.
    todo = (~peaky).nonzero().squeeze(1)
    if todo.numel():
        interval_best = _best_double_threshold(pos[todo], neg[todo], pos_range[todo], neg_range[todo], table,
                                               left_thresholds or left_thresholds_for(n_models))
        best[todo] = torch.maximum(best[todo], interval_best)
    # No surviving rule gives no evidence of a difference: epsilon 0.
    eps = best.clamp(min=0.0, max=EPSILON_CAP)
    eps = torch.where(peaky, torch.full_like(eps, EPSILON_CAP), eps)
    return eps.cpu().numpy()


def _epsilon_table(n_models: int, device) -> torch.Tensor:
    """Flat ``(N+1)*(N+1)`` table: epsilon of a rule with counts ``(tp, fp)``.

    Index ``tp * (N + 1) + fp``. ``+inf`` marks perfect separation and ``-inf``
    marks a discarded rule (exactly one error rate zero, or both terms NaN), so
    that a plain max over rules implements the spec.
    """
    counts = np.arange(n_models + 1, dtype=np.float64)
    tp, fp = np.meshgrid(counts, counts, indexing="ij")
    fpr = fp / n_models
    fnr = (n_models - tp) / n_models  # share of positives predicted negative
    with np.errstate(divide="ignore", invalid="ignore"):
        term1 = np.log(1.0 - DELTA - fpr) - np.log(fnr)
        term2 = np.log(1.0 - DELTA - fnr) - np.log(fpr)
        eps = np.fmax(term1, term2)  # fmax ignores a NaN term
    eps = np.clip(eps, 0.0, None)
    eps[np.isnan(eps)] = -np.inf
    fpr_zero, fnr_zero = fpr == 0, fnr == 0
    eps[fpr_zero != fnr_zero] = -np.inf
    eps[fpr_zero & fnr_zero] = np.inf
    return torch.from_numpy(eps.reshape(-1)).to(device)


def _median_of_sorted(x: torch.Tensor) -> torch.Tensor:
    """numpy's median of each row of a row-sorted tensor (mean of the middle two)."""
    n = x.shape[1]
    if n % 2:
        return x[:, n // 2]
    return (x[:, n // 2 - 1] + x[:, n // 2]) / 2


def linspace_at(start, stop, num, index):
    """``numpy.linspace(start, stop, num)[index]``, bit for bit, elementwise.

    numpy computes ``index * ((stop - start) / (num - 1)) + start`` and sets the
    last point to ``stop``; ``num == 1`` gives ``[start]``. Indices outside
    ``[0, num)`` give ``-inf`` below and ``+inf`` above, which keeps searches simple.
    """
    index = index.to(start.dtype)
    num_f = num.to(start.dtype)
    div = torch.clamp(num_f - 1, min=1)
    step = torch.where(num_f > 1, (stop - start) / div, torch.zeros_like(start))
    points = index * step + start
    points = torch.where((index == num_f - 1) & (num_f > 1), stop, points)
    points = torch.where(index < 0, torch.full_like(points, -math.inf), points)
    return torch.where(index >= num_f, torch.full_like(points, math.inf), points)


def _first_linspace_index_above(start, stop, num, value):
    """Smallest ``i`` with ``linspace(start, stop, num)[i] > value`` (``num`` if none)."""
    num_f = num.to(start.dtype)
    step = (stop - start) / torch.clamp(num_f - 1, min=1)
    guess = torch.floor((value - start) / step) + 1
    guess = torch.nan_to_num(guess, nan=0.0, posinf=0.0, neginf=0.0)
    index = torch.minimum(torch.clamp(guess, min=0.0), num_f)
    # The guess is off by at most one ulp-driven step; walk it to the exact answer.
    for _ in range(3):
        index = index - ((index > 0) & (linspace_at(start, stop, num, index - 1) > value)).to(index.dtype)
    for _ in range(3):
        index = index + ((index < num_f) & (linspace_at(start, stop, num, index) <= value)).to(index.dtype)
    return index


def _best_single_threshold(pos, neg, table):
    """Best epsilon of the rules ``c >= t``, t on ``linspace(lo, hi, ceil(100 (hi - lo)))``.

    Between two consecutive distinct sample values ``(a, b]`` every threshold gives
    the same counts (those of ``c >= b``), so each such gap is one candidate rule,
    kept when at least one threshold of the grid falls inside it.
    """
    n_examples, n_models = pos.shape
    values = torch.cat([pos, neg], dim=1)
    is_pos = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)], dim=1)
    values, order = values.sort(dim=1)
    is_pos = is_pos.gather(1, order)

    position = torch.arange(2 * n_models, device=pos.device, dtype=values.dtype)
    pos_before = torch.cumsum(is_pos, dim=1) - is_pos
    tp = n_models - pos_before  # positives >= this value
    fp = n_models - (position - pos_before)  # negatives >= this value

    previous = torch.cat([torch.full_like(values[:, :1], -math.inf), values[:, :-1]], dim=1)
    lo, hi = values[:, :1], values[:, -1:]
    num = torch.ceil((hi - lo) * NUM_THRESHOLDS_PER_UNIT)
    first = _first_linspace_index_above(lo, hi, num, previous)
    in_gap = (first < num) & (linspace_at(lo, hi, num, first) <= values) & (previous < values)

    index = (tp * (n_models + 1) + fp).long()
    eps = torch.where(in_gap, table.take(index), torch.full_like(values, -math.inf))
    return eps.amax(dim=1)


def left_thresholds_for(n_models: int) -> str:
    """The cheaper enumeration of the left thresholds on CPU: a count state costs six to seven
    searched thresholds (its exact linspace search walks several grid points). Measured on 500
    examples, gaps against grid: 9.8x faster at N = 3, 3.3x at 8, 2.2x at 16, equal at 32 (2-core
    AMD EPYC with AVX512); 17.7x, 4.2x, 2.4x and 0.8x (2-core Intel Xeon with AVX512-BF16)."""
    return "gaps" if 7 * (2 * n_models + 1) < NUM_LEFT_THRESHOLDS else "grid"


def _best_double_threshold(pos, neg, pos_range, neg_range, table, left_thresholds="grid"):
    """Best epsilon of the interval rules ``t_l <= c <= t_r`` around the peaky sample."""
    n_examples, n_models = pos.shape
    # The narrower sample is "peaky" and plays the positive class (ties: neg).
    swap = pos_range >= neg_range
    peaky = torch.where(swap[:, None], neg, pos)
    other = torch.where(swap[:, None], pos, neg)
    width = torch.where(pos_range > neg_range, neg_range, pos_range)

    right_lo = (peaky[:, 0] + width) - DOUBLE_THRESHOLD_BUFFER
    right_hi = peaky[:, -1] + DOUBLE_THRESHOLD_BUFFER
    right_num = torch.ceil((right_hi - right_lo) * NUM_THRESHOLDS_PER_UNIT)

    # One sorted sequence with both samples: a single search per threshold gives
    # both counts (peaky count by prefix sums, the other by subtraction).
    merged, order = torch.cat([peaky, other], dim=1).sort(dim=1)
    from_peaky = (order < n_models).to(torch.int32)
    peaky_prefix = torch.cat(
        [torch.zeros_like(from_peaky[:, :1]), torch.cumsum(from_peaky, dim=1, dtype=torch.int32)], dim=1
    )

    max_right = int(right_num.max().item()) if n_examples else 0
    states = 2 * n_models + 1  # how many of the 2N sample values lie below t_l
    rules_per_example = max(max_right, 1) * (states if left_thresholds == "gaps" else NUM_LEFT_THRESHOLDS)
    chunk = max(1, _RULES_PER_CHUNK["cuda" if pos.is_cuda else "cpu"] // rules_per_example)
    left_index = torch.arange(NUM_LEFT_THRESHOLDS, device=pos.device, dtype=pos.dtype)
    left_num = torch.full((1, 1, 1), NUM_LEFT_THRESHOLDS, device=pos.device, dtype=pos.dtype)
    stride = n_models + 1

    best = []
    for s in range(0, n_examples, chunk):
        e = min(s + chunk, n_examples)
        num = right_num[s:e, None]
        right_index = torch.arange(max_right, device=pos.device, dtype=pos.dtype).expand(e - s, -1)
        t_right = linspace_at(right_lo[s:e, None], right_hi[s:e, None], num, right_index)
        valid_right = right_index < num
        t_right = torch.where(valid_right, t_right, right_hi[s:e, None])

        seq = merged[s:e].contiguous()
        prefix = peaky_prefix[s:e]
        right_all = torch.searchsorted(seq, t_right, right=True, out_int32=True)  # c <= t_r
        # Padding rows count nothing, which the table discards (fpr = 0, fnr = 1).
        right_all = right_all * valid_right
        right_peaky = prefix.gather(1, right_all.long())
        right_other = right_all - right_peaky

        centre = t_right - width[s:e, None]
        left_lo, left_hi = (centre - DOUBLE_THRESHOLD_BUFFER)[..., None], (centre + DOUBLE_THRESHOLD_BUFFER)[..., None]
        if left_thresholds == "grid":
            t_left = linspace_at(left_lo, left_hi, left_num, left_index)
            left_all = torch.searchsorted(seq, t_left.reshape(e - s, -1), out_int32=True)  # c < t_l
            left_peaky = prefix.gather(1, left_all.long()).view(e - s, max_right, -1)
            left_all = left_all.view(e - s, max_right, -1)
            occurs = None
        else:
            # Count k (values below t_l) occurs when a left threshold lies in (seq[k-1], seq[k]]:
            # when more thresholds lie at or below seq[k] than at or below seq[k-1].
            at_or_below = _first_linspace_index_above(left_lo, left_hi, left_num, seq[:, None, :])
            at_or_below = torch.cat([torch.zeros_like(at_or_below[..., :1]), at_or_below,
                                     torch.full_like(at_or_below[..., :1], NUM_LEFT_THRESHOLDS)], dim=-1)
            occurs = at_or_below[..., 1:] > at_or_below[..., :-1]
            left_all = torch.arange(states, device=pos.device, dtype=torch.int32)
            left_peaky = prefix[:, None, :]

        # Counts inside [t_l, t_r]; an empty interval (t_l > t_r) counts nothing.
        tp = (right_peaky[..., None] - left_peaky).clamp_(min=0)
        fp = (right_other[..., None] - (left_all - left_peaky)).clamp_(min=0)
        eps = table.take((tp * stride + fp).long())
        if occurs is not None:
            eps = torch.where(occurs, eps, -math.inf)
        best.append(eps.amax(dim=(1, 2)))
    if not best:
        return torch.empty(0, dtype=pos.dtype, device=pos.device)
    return torch.cat(best)


# ---------------------------------------------------------------------------
# Forget quality and final score


def max_measurable_epsilon(n_models: int) -> float:
    """``ceil(ln(N - 1))``: the largest epsilon N models per side can show (7 at N = 512)."""
    _check_model_count(n_models)
    return float(math.ceil(math.log(n_models - 1)))


def bucket_count(n_models: int) -> int:
    """Number of half-unit buckets below the largest measurable epsilon (14 at N = 512)."""
    return int(max_measurable_epsilon(n_models) / BUCKET_WIDTH)


def epsilon_points(epsilons, n_models: int) -> np.ndarray:
    """Points of each example: ``2^-k`` for bucket ``k = floor(eps / 0.5)``, 0 past the last."""
    eps = np.asarray(epsilons, dtype=np.float64)
    buckets = np.floor(eps / BUCKET_WIDTH)
    return np.where(buckets < bucket_count(n_models), np.exp2(-np.clip(buckets, 0, None)), 0.0)


def forget_quality(unlearned_confs, retrained_confs, device=None) -> float:
    """The forget score F in [0, 1]: 1 means indistinguishable from retraining."""
    eps = per_example_epsilons(unlearned_confs, retrained_confs, device=device)
    n_models = _shape_of(unlearned_confs)[0]
    return float(epsilon_points(eps, n_models).mean())


def final_score(
    forget_quality: float,
    unlearned_retain_accs,
    unlearned_test_accs,
    retrained_retain_accs,
    retrained_test_accs,
) -> float:
    """``F * (RA_unlearned / RA_retrained) * (TA_unlearned / TA_retrained)``, means over models."""
    means = []
    for name, accs in (
        ("unlearned_retain_accs", unlearned_retain_accs),
        ("unlearned_test_accs", unlearned_test_accs),
        ("retrained_retain_accs", retrained_retain_accs),
        ("retrained_test_accs", retrained_test_accs),
    ):
        values = np.asarray(_to_numpy(accs), dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be a non-empty array of finite accuracies")
        means.append(values.mean())
    ra_u, ta_u, ra_r, ta_r = means
    if ra_r <= 0 or ta_r <= 0:
        raise ValueError("retrained accuracies must be positive to form the utility ratios")
    return float(forget_quality * (ra_u / ra_r) * (ta_u / ta_r))


# ---------------------------------------------------------------------------
# Input handling


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _shape_of(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _check_model_count(n_models: int) -> None:
    if n_models < MIN_MODELS:
        raise ValueError(
            f"the metric needs at least {MIN_MODELS} models per side (got {n_models}): "
            "its buckets stop at ceil(ln(N - 1)), which must be at least 0.5"
        )


def _pick_device(x, device):
    """The caller's device, else the inputs' when they are tensors, else the default one."""
    if device is not None:
        return torch.device(device)
    return device_of(x) if isinstance(x, torch.Tensor) else pick_device()


def _validated_confs(unlearned, retrained, device):
    shape_u, shape_r = _shape_of(unlearned), _shape_of(retrained)
    if len(shape_u) != 2 or shape_u != shape_r:
        raise ValueError(
            "unlearned and retrained confidences must both be [N_models, n_forget] arrays "
            f"of the same shape; got {shape_u} and {shape_r}"
        )
    _check_model_count(shape_u[0])
    if shape_u[1] == 0:
        raise ValueError("the forget set is empty: confidences have 0 columns")
    target = _pick_device(unlearned, device)
    tensors = []
    for name, x in (("unlearned", unlearned), ("retrained", retrained)):
        t = torch.as_tensor(x).to(device=target, dtype=torch.float64)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} confidences contain NaN or infinite values")
        tensors.append(t)
    return tensors
