"""Uncertainty for the paper's numbers: seed-level intervals and tests, the Holm correction,
power, and (for single-seed rows only) problem-level bootstrap intervals.

**Seeds are the unit of replication.** Every metric is a mean over the fixed test problems of a
per-problem quantity (correct at t2, c2 − c1 for Δ, ...), computed once per seed; each seed is an
independent training (its own base model, data and sampling). The primary statistics work on
those per-seed values: `seed_interval` (mean, s.e., t interval with n − 1 df) for one arm and
`seed_paired` for a difference between two arms that share seeds (per-seed paired differences,
their t interval and an exact sign-flip permutation p-value), `holm` over a family of
comparisons, `detectable_difference` for power. With 3 seeds a bootstrap that resamples seeds
reports about the range of the three values as a 95 % interval and excludes 0 far too often
(`tests/test_stats.py` simulates it); it is kept only for rows with one seed, labelled as such.

Arrays of per-problem values have shape [n_seeds, n_problems]; every arm of a sweep is scored
on the same problems in the same order, which is what makes comparisons *paired*.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_N_BOOT = 10_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and a (1 − alpha) bootstrap interval."""

    mean: float
    se: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.se:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class Comparison:
    """Difference a − b with a bootstrap interval and a two-sided bootstrap p-value."""

    diff: float
    se: float
    lo: float
    hi: float
    p_value: float
    n_seeds: tuple[int, int]
    n_problems: int


@dataclass(frozen=True)
class SeedEstimate:
    """Mean over seeds of one arm's per-seed values, its s.e. and a t interval (n − 1 df)."""

    mean: float
    se: float
    lo: float
    hi: float
    per_seed: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.per_seed)


@dataclass(frozen=True)
class SeedComparison:
    """a − b from per-seed paired differences: their mean, s.e., t interval (n − 1 df) and the
    exact two-sided sign-flip permutation p-value (Monte Carlo beyond 20 seeds)."""

    diff: float
    se: float
    lo: float
    hi: float
    p_value: float
    per_seed: tuple[float, ...]  # a − b for each shared seed, in seed order
    seeds: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def per_seed_means(values) -> np.ndarray:
    """One value per seed: a 1-d array as it is, a [n_seeds, n_problems] grid as its row means."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 2:
        v = v.mean(axis=1)
    return _finite_1d(v)


def t_quantile(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def seed_interval(values, alpha: float = 0.05) -> SeedEstimate:
    """Mean ± s.e. over seeds with the t interval (n − 1 df); NaN s.e. and interval for one seed."""
    x = per_seed_means(values)
    n = len(x)
    m = float(x.mean())
    if n < 2:
        return SeedEstimate(m, float("nan"), float("nan"), float("nan"), tuple(x.tolist()))
    se = float(x.std(ddof=1) / math.sqrt(n))
    half = t_quantile(1 - alpha / 2, n - 1) * se
    return SeedEstimate(m, se, m - half, m + half, tuple(x.tolist()))


def seed_paired(a, b, seeds: Sequence[int] | None = None, alpha: float = 0.05) -> SeedComparison:
    """a − b over seeds: `a` and `b` hold one value per seed (or per-problem grids
    [n_seeds, n_problems]), row s of both from the same seed (the same base model)."""
    da, db = per_seed_means(a), per_seed_means(b)
    if len(da) != len(db):
        raise ValueError(f"a seed-paired comparison needs the same seeds: {len(da)} vs {len(db)} values")
    d = da - db
    seeds = tuple(range(len(d))) if seeds is None else tuple(int(s) for s in seeds)
    if len(seeds) != len(d):
        raise ValueError(f"{len(seeds)} seed labels for {len(d)} differences")
    e = seed_interval(d, alpha)
    p = sign_flip_p(d) if len(d) >= 2 else float("nan")
    return SeedComparison(e.mean, e.se, e.lo, e.hi, p, tuple(d.tolist()), seeds)


def sign_flip_p(d, n_draws: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of "the per-seed differences are symmetric about 0": the share of sign
    assignments whose |mean| is at least the observed |mean|; every one of the 2^n assignments
    for n ≤ 20 (exact), `n_draws` random ones beyond."""
    d = _finite_1d(d)
    observed = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max()))
    if len(d) <= 20:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_draws, len(d)))
    return float(np.mean(np.abs(signs @ d / len(d)) >= observed))


def t_test_p(d) -> float:
    """Two-sided p of the one-sample t-test that the per-seed differences `d` have mean 0 (n − 1 df);
    NaN for fewer than 2 values. With 3 seeds the exact sign-flip test cannot go below 0.25, so a
    3-seed rule needs the t-test (normality of the per-seed differences is then assumed)."""
    from scipy.stats import t

    x = _finite_1d(d)
    if len(x) < 2 or degenerate(x):
        return float("nan")
    se = x.std(ddof=1) / math.sqrt(len(x))
    return float(2 * t.sf(abs(x.mean()) / se, len(x) - 1))


def degenerate(x, tol: float = 1e-9) -> bool:
    """Whether the per-seed differences are all equal (within `tol`, float noise): their s.d. is 0 and a t
    statistic undefined (a constant 0.006 has s.d. ~1e-18 in floats, which would give p ~ 1e-32)."""
    x = _finite_1d(x)
    return len(x) > 0 and float(np.ptp(x)) <= tol


def tost_p(d, margin: float) -> float:
    """Two one-sided t-tests (n − 1 df) that the mean of the per-seed differences `d` lies within
    (−margin, +margin): the larger of the two one-sided p-values (equivalence at level α iff < α)."""
    from scipy.stats import t

    x = _finite_1d(d)
    if len(x) < 2 or not margin > 0 or degenerate(x):
        return float("nan")
    se = x.std(ddof=1) / math.sqrt(len(x))
    lower = t.sf((x.mean() + margin) / se, len(x) - 1)  # H0: mean <= -margin
    upper = t.cdf((x.mean() - margin) / se, len(x) - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def problem_paired(a, b) -> tuple[float, float, float, float]:
    """a − b over the test problems, conditional on the trained seeds: each problem's value averaged
    over each arm's seeds ([n_seeds, n_problems] grids), then the paired t interval and p over problems
    (mean, lo, hi, p). It asks whether *these* trained models differ, not whether the training
    procedure does (that is the seed-level test)."""
    from scipy.stats import t

    va, vb = _grid(a).mean(axis=0), _grid(b).mean(axis=0)
    if va.shape != vb.shape:
        raise ValueError(f"paired over problems needs the same problems: {va.shape} vs {vb.shape}")
    d = va - vb
    n = len(d)
    m, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    half = t_quantile(0.975, n - 1) * se
    p = float(2 * t.sf(abs(m) / se, n - 1)) if se > 0 else (0.0 if m != 0 else 1.0)
    return m, m - half, m + half, p


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values of a family of tests (step-down; monotone; NaN stays NaN)."""
    items = [(k, p) for k, p in p_values.items() if not (isinstance(p, float) and math.isnan(p))]
    items.sort(key=lambda kp: kp[1])
    m, out, running = len(items), {k: float("nan") for k in p_values}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def holm_levels(p_values: Mapping[str, float], alpha: float = 0.05) -> dict[str, float]:
    """The level at which Holm's step-down procedure tests each comparison, for intervals consistent with its
    verdicts: α/(m − step) in the order of the raw p (an undefined p last, as p = 1), held at the first
    non-rejecting step's level from there on, tied p sharing one level."""
    def p_of(k: str) -> float:
        p = p_values[k]
        return 1.0 if isinstance(p, float) and math.isnan(p) else p

    order = sorted(p_values, key=p_of)
    m, stopped, out = len(order), None, {}
    for step, k in enumerate(order):
        p = p_of(k)
        tied = next((out[o] for o in order[:step] if p_of(o) == p), None)
        level = stopped or tied or alpha / (m - step)
        if stopped is None and p >= level:
            stopped = level
        out[k] = level
    return out


def detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The true mean difference a two-sided paired t-test over `n` seeds detects with probability
    `power` at level `alpha`, when the per-seed differences have standard deviation `sd`
    (noncentral t)."""
    from scipy.optimize import brentq

    if n < 2 or not sd > 0:
        raise ValueError(f"need n >= 2 seeds and sd > 0, got n={n}, sd={sd}")
    crit = t_quantile(1 - alpha / 2, n - 1)

    def miss(delta: float) -> float:
        return t_test_power(delta * math.sqrt(n) / sd, crit, n - 1) - power

    hi = (crit + 4) * sd / math.sqrt(n)
    while miss(hi) < 0:  # small alpha and few seeds: the root lies further out
        hi *= 2
    return float(brentq(miss, 1e-9 * sd, hi))


def t_test_power(nc: float, crit: float, df: int) -> float:
    """P(|T| > crit) for T noncentral t with `df` degrees of freedom and noncentrality `nc`, by integrating
    the normal tails over the chi-square law of the variance estimate where scipy's `nct` returns NaN (far in
    the tail: once read as power 1, which understated the difference needed at small alpha)."""
    from scipy.integrate import quad
    from scipy.stats import chi2, nct, norm

    reach = nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc)
    if math.isfinite(reach):
        return float(reach)

    def tails(v: float) -> float:
        c = crit * math.sqrt(v / df)
        return (norm.sf(c - nc) + norm.cdf(-c - nc)) * chi2.pdf(v, df)

    lo, hi = chi2.ppf(1e-12, df), chi2.ppf(1 - 1e-12, df)
    return float(quad(tails, lo, hi, limit=200, epsabs=1e-10)[0])


def seeds_needed(diff: float, sd: float, alpha: float = 0.05, power: float = 0.8, most: int = 1000) -> int | None:
    """The fewest seeds at which a paired t-test detects a true difference `diff` with probability
    `power` when the per-seed differences have s.d. `sd` (None: more than `most`, or no difference)."""
    if not diff or not sd > 0:
        return None
    for n in range(2, most + 1):
        if detectable_difference(sd, n, alpha, power) <= abs(diff):
            return n
    return None


def sign_flip_floor(n: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give over n seeds (all seeds agree in sign): 2 / 2^n."""
    return 2.0 / 2**n


def sign_flip_holm_power(effect: float, n: int, family: int, alpha: float = 0.05, n_sim: int = 4000,
                         seed: int = 0) -> tuple[float, float]:
    """The power of the rule the primary tables use, by simulation: the exact two-sided sign-flip test over
    `n` normal per-seed differences with mean `effect` (in units of their s.d.), Holm over `family`
    comparisons. Holm tests a comparison at α/family when it comes first and at α when every other
    comparison was rejected before it, so its power lies between the two returned values (first step,
    last step); with n seeds no level below `sign_flip_floor(n)` can be reached at all."""
    if n < 2 or family < 1:
        raise ValueError(f"need n >= 2 seeds and a family of >= 1 comparisons, got n={n}, family={family}")
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, 1.0, size=(n_sim, n))
    if n <= 14:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = rng.choice((1.0, -1.0), size=(4096, n))
    observed = np.abs(d.mean(axis=1))
    p = np.empty(n_sim)
    for i in range(0, n_sim, 500):  # chunks bound the 2^n x chunk matrix
        means = np.abs(signs @ d[i:i + 500].T / n)
        p[i:i + 500] = (means >= observed[i:i + 500] - 1e-12 * np.maximum(1.0, np.abs(d[i:i + 500]).max(axis=1))).mean(axis=0)
    return float((p <= alpha / family).mean()), float((p <= alpha).mean())


def tost_power(effect: float, margin: float, n: int, alpha: float = 0.05, n_sim: int = 20_000, seed: int = 0) -> float:
    """TOST's power, by simulation: the probability that `tost_p` over `n` normal per-seed differences with mean
    `effect` falls below α at `margin` (both in units of the differences' s.d.). At |effect| = margin it is the
    test's size (≤ α); at effect 0, the chance that a true zero passes TOST (the equivalence verdict,
    `verdicts.verdict`, also needs the Holm p ≥ α, so its power is at most this)."""
    from scipy.stats import t

    if n < 2 or not margin > 0:
        raise ValueError(f"need n >= 2 seeds and a margin > 0, got n={n}, margin={margin}")
    d = np.random.default_rng(seed).normal(effect, 1.0, size=(n_sim, n))
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n)
    p = np.maximum(t.sf((mean + margin) / se, n - 1), t.cdf((mean - margin) / se, n - 1))  # as tost_p, vectorised
    return float((p < alpha).mean())


def seeds_needed_rule(effect: float, family: int, alpha: float = 0.05, power: float = 0.8, most: int = 30,
                      n_sim: int = 2000) -> int | None:
    """The fewest seeds at which the sign-flip + Holm rule detects a true difference of `effect` s.d. with
    probability `power` even at Holm's first step (α/family), by `sign_flip_holm_power`; None beyond `most`."""
    if not effect:
        return None
    for n in range(2, most + 1):
        if sign_flip_floor(n) * family >= alpha:
            continue  # unreachable at the first step whatever the data
        if sign_flip_holm_power(abs(effect), n, family, alpha, n_sim)[0] >= power:
            return n
    return None


def mean_se(x) -> tuple[float, float]:
    """Sample mean and its standard error (ddof=1); the s.e. is nan for fewer than 2 values."""
    x = _finite_1d(x)
    se = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(np.mean(x)), se


def bootstrap_ci(x, n_boot: int = DEFAULT_N_BOOT, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a 1-d sample."""
    x = _finite_1d(x)
    _check_boot(n_boot, alpha)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=n_boot)
    boots = counts @ x / len(x)
    return _percentiles(boots, alpha)


def hierarchical_bootstrap(values, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the grand mean of `values` [n_seeds, n_problems]: seeds and
    problems are both resampled with replacement (seeds only when there are 2 or more)."""
    v = _grid(values)
    rng = np.random.default_rng(seed)
    return _resampled_means([v], n_boot, rng, paired_seeds=False)[0]


def estimate(values, n_boot: int = DEFAULT_N_BOOT, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """Grand mean of per-problem values [n_seeds, n_problems]: s.e. over seeds (over problems
    when there is one seed) and a two-level bootstrap interval over seeds and problems."""
    v = _grid(values)
    per_seed = v.mean(axis=1)
    if len(per_seed) > 1:
        m, se = mean_se(per_seed)
    else:
        m, se = mean_se(v[0])
    boots = hierarchical_bootstrap(v, n_boot, seed)
    lo, hi = _percentiles(boots, alpha)
    return Estimate(m, se, lo, hi)


def paired_bootstrap(
    a, b, n_boot: int = DEFAULT_N_BOOT, alpha: float = 0.05, seed: int = 0, paired_seeds: bool | None = None
) -> Comparison:
    """Difference of grand means, mean(a) − mean(b), for two arms scored on the same problems.

    `a` is [n_seeds_a, n_problems], `b` is [n_seeds_b, n_problems], columns the same problems.
    Each replicate draws ONE resample of problems used by both arms (paired over problems), and
    resamples seeds: with the same seed indices for both arms when `paired_seeds` (default:
    when both have the same number of seeds, i.e. seed s of a shares its base model with seed s
    of b), else independently. p is the two-sided bootstrap p-value of "no difference":
    twice the smaller tail mass of the replicates on either side of 0, with the +1 correction.
    """
    va, vb = _grid(a), _grid(b)
    if va.shape[1] != vb.shape[1]:
        raise ValueError(f"paired comparison needs the same problems: {va.shape[1]} vs {vb.shape[1]} columns")
    _check_boot(n_boot, alpha)
    if paired_seeds is None:
        paired_seeds = va.shape[0] == vb.shape[0]
    elif paired_seeds and va.shape[0] != vb.shape[0]:
        raise ValueError(f"paired_seeds needs the same number of seeds, got {va.shape[0]} and {vb.shape[0]}")
    rng = np.random.default_rng(seed)
    ba, bb = _resampled_means([va, vb], n_boot, rng, paired_seeds)
    boots = ba - bb
    lo, hi = _percentiles(boots, alpha)
    below, above = np.sum(boots <= 0), np.sum(boots >= 0)
    p = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
    return Comparison(
        diff=float(va.mean() - vb.mean()),
        se=float(np.std(boots, ddof=1)),
        lo=lo,
        hi=hi,
        p_value=float(p),
        n_seeds=(va.shape[0], vb.shape[0]),
        n_problems=va.shape[1],
    )


# --- internals ----------------------------------------------------------------------------------
def _resampled_means(grids: list[np.ndarray], n_boot: int, rng: np.random.Generator, paired_seeds: bool) -> list[np.ndarray]:
    """One bootstrap replicate per row: problem counts shared by all grids (paired), seed
    counts shared when `paired_seeds`. A resampled grand mean is a weighted sum, so no copy
    of the data is made: (problem counts @ values.T) gives per-seed means, seed counts weight them."""
    n_problems = grids[0].shape[1]
    prob_counts = rng.multinomial(n_problems, np.full(n_problems, 1 / n_problems), size=n_boot) / n_problems
    out, seed_counts = [], None
    for v in grids:
        per_seed = prob_counts @ v.T  # [n_boot, n_seeds]
        s = v.shape[0]
        if s == 1:
            out.append(per_seed[:, 0])
            continue
        if seed_counts is None or not paired_seeds:
            seed_counts = rng.multinomial(s, np.full(s, 1 / s), size=n_boot) / s
        out.append(np.sum(per_seed * seed_counts, axis=1))
    return out


def _percentiles(boots: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _finite_1d(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("need at least one value, got an empty sample")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"sample holds non-finite values: {x[~np.isfinite(x)][:5].tolist()}")
    return x


def _grid(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"per-problem values must be a non-empty [n_seeds, n_problems] array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("per-problem values hold non-finite entries")
    return v


def _check_boot(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
