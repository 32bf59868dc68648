"""KLOM: how far, example by example, the unlearned models' margins lie from the retrained models'.

Georgiev et al. 2024 ("Attribute-to-Delete"), as the EasyDUB benchmark computes it: for one
example, the N unlearned models' margins and the N retrained models' margins (the margin
``z_y - logsumexp_{j != y} z_j`` is the kit's logit-scaled confidence, ``metric.py``) are
clipped to [-100, 100] and binned into 20 equal bins over their pooled range (numpy's
histogram rule: a range of width 0 becomes one of width 1 around it); KLOM is

    KL(unlearned || retrained) = sum over bins with p_u > 0 of p_u * ln(p_u / max(p_r, 1e-5))

with ``p_u`` and ``p_r`` the two samples' shares per bin. The direction matters: the
unlearned models are the distribution measured, the retrained ones the reference (an older
public implementation swapped them). Identical samples give 0; an unlearned sample whose
bins the retrained one never reaches gives ln(1e5) = 11.51, the largest value.

Pure: margins in, numbers out. ``summaries`` gives each set's 95th percentile, median and
mean with 95% intervals over examples (the examples resampled, the models fixed: the
interval does not cover the noise of drawing other models).
"""

from __future__ import annotations

import zlib

import numpy as np

CLIP = 100.0
BINS = 20
FLOOR = 1e-5  # the retrained share where it is 0 and the unlearned share is not
SETS = ("forget", "retain", "test")
STATISTICS = ("p95", "median", "mean")
RESAMPLES, SEED = 1000, 0
_CHUNK = 50_000_000  # resampled values held at once


def per_example_klom(unlearned, retrained) -> np.ndarray:
    """KL(unlearned || retrained) of each example's binned margins: ``[N_u, n]`` and ``[N_r, n]``
    in, float64 ``[n]`` out. The bins are numpy's histogram bins, computed for all examples at once."""
    u = np.clip(np.asarray(unlearned, dtype=np.float64), -CLIP, CLIP)
    r = np.clip(np.asarray(retrained, dtype=np.float64), -CLIP, CLIP)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1] or min(u.shape[0], r.shape[0]) < 1:
        raise ValueError(f"margins must be [models, examples] with the same examples, got {u.shape} and {r.shape}")
    n = u.shape[1]
    if n == 0:
        return np.zeros(0)
    low = np.minimum(u.min(axis=0), r.min(axis=0))
    high = np.maximum(u.max(axis=0), r.max(axis=0))
    flat = low == high
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    counts_u, counts_r = (_bin_counts(x, low, high) for x in (u, r))
    share_u, share_r = counts_u / u.shape[0], counts_r / r.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(share_u > 0, share_u * np.log(share_u / np.maximum(share_r, FLOOR)), 0.0)
    return terms.sum(axis=1)


def _bin_counts(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``[n, BINS]`` counts of ``values`` ``[models, n]`` in each example's ``BINS`` equal bins from
    ``low`` to ``high``, bin by bin as ``np.histogram`` puts them (its edges, its last bin closed)."""
    edges = np.linspace(low, high, BINS + 1, axis=-1)  # [n, BINS + 1], numpy's own edges
    index = ((values - low) * (BINS / (high - low))).astype(np.intp)
    index[index == BINS] = BINS - 1
    # numpy's correction of the float estimate against the edges themselves
    columns = np.arange(values.shape[1])
    index[values < edges[columns, index]] -= 1
    index[(values >= edges[columns, index + 1]) & (index != BINS - 1)] += 1
    flat = (columns * BINS + index).ravel()
    return np.bincount(flat, minlength=values.shape[1] * BINS).reshape(values.shape[1], BINS).astype(np.float64)


def statistic(values: np.ndarray, name: str, axis=-1) -> np.ndarray:
    if name == "p95":
        return np.quantile(values, 0.95, axis=axis)
    if name == "median":
        return np.quantile(values, 0.5, axis=axis)
    return np.mean(values, axis=axis)


def resampled(values: np.ndarray, stream: str, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """``{statistic: [resamples]}`` over resamples of the examples. The draws depend only on
    the seed, the stream (the set) and the number of examples, so two rows of one evaluation
    are resampled alike and their differences are paired."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    out = {name: np.empty(resamples) for name in STATISTICS}
    if n == 0:
        return {name: np.full(resamples, np.nan) for name in STATISTICS}
    rng = np.random.default_rng([seed, zlib.crc32(f"klom/{stream}".encode()), n])
    step = max(1, _CHUNK // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        draws = values[rng.integers(0, n, size=(stop - start, n))]
        for name in STATISTICS:
            out[name][start:stop] = statistic(draws, name)
    return out
