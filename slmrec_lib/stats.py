"""The statistics behind the report's verdicts: seed-level and user-level tests, intervals, Holm, Kendall.

Every function states its test, its assumptions and its interval; the tests and quantiles come from
scipy.stats, the bootstrap is plain numpy. A claim of the paper reads "A scores above B", so the
default alternative is one-sided ("greater": A > B), and the intervals are two-sided 95% (1 - alpha).

- `welch(a, b)`: Welch's unequal-variance t-test on per-seed scores (one value a training seed).
- `relative_difference_ci(a, b)`: the relative change of mean(A) over mean(B) in percent, with a
  Fieller interval.
- `per_user_metric(ranks, metric)`: HR@k, NDCG@k or reciprocal rank of each user from 0-based ranks
  (the same definitions as `evaluation.metrics_from_ranks`, before the mean over users).
- `paired_bootstrap(a_by_seed, b_by_seed)`: the difference of mean per-user metrics of A and B on the
  same users and candidates, with a two-level (seeds, then users) bootstrap interval and p-value.
- `paired_wilcoxon(a_by_seed, b_by_seed)`: the Wilcoxon signed-rank test on per-user differences
  averaged over seeds, a second opinion on the bootstrap.
- `holm(pvalues)`: Holm's step-down adjustment for the number of claims (nan-safe).
- `kendall_tau(a, b)`: Kendall's tau-b between two orderings of the same models (e.g. sampled vs
  full ranking).
- `decide(p_adjusted, effect_ci)`: the verdict string of a one-sided claim from an adjusted p-value and
  an interval of the effect.

A result whose test cannot be run (one seed a side, no spread at all, every user tied) carries nan in
its numbers and a `reason` saying why; `decide` turns nan into the inconclusive verdict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# The verdict strings; identical to the report's (book.HOLDS, book.FAILS, book.INCONCLUSIVE).
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive given the seed spread"
ALTERNATIVES = ("greater", "less", "two-sided")
NAN = float("nan")


class StatsError(ValueError):
    """Input a test cannot use (empty, not finite, mismatched shapes, unknown option)."""


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise StatsError(f"alternative={alternative!r} is not one of {ALTERNATIVES}")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise StatsError(f"alpha={alpha!r} must lie strictly between 0 and 1 (0.05 for a 95% interval)")


def _values(x, name: str) -> np.ndarray:
    """A 1-D float array of finite values with at least one entry."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise StatsError(f"{name} must be a non-empty 1-D sequence of numbers (one a seed); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise StatsError(f"{name} holds non-finite values {arr[~np.isfinite(arr)][:3].tolist()}; drop or fix those runs")
    return arr


# ------------------------------------------------------------------------------ seed-level tests
@dataclass(frozen=True)
class WelchResult:
    diff: float  # mean(a) - mean(b)
    ci_low: float  # two-sided (1 - alpha) interval of the difference (Welch-Satterthwaite df, t quantile)
    ci_high: float
    df: float  # Welch-Satterthwaite degrees of freedom
    t: float  # the t statistic, diff / standard error
    p: float  # p-value under `alternative`
    n_a: int
    n_b: int
    alternative: str
    reason: str = ""  # why p and the interval are nan, empty when the test ran

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def __str__(self) -> str:
        if self.reason:
            return f"difference {self.diff:+.3g}; no test: {self.reason}"
        return (f"difference {self.diff:+.3g} [{self.ci_low:+.3g}, {self.ci_high:+.3g}], Welch t = {self.t:.2f}, "
                f"df = {self.df:.1f}, p ({self.alternative}) = {self.p:.3g}, seeds {self.n_a} vs {self.n_b}")


def welch(a, b, alternative: str = "greater", alpha: float = 0.05) -> WelchResult:
    """Welch's t-test of mean(A) against mean(B) on per-seed scores (scipy.stats.ttest_ind, equal_var=False).

    Test: t = (mean(a) - mean(b)) / sqrt(s_a^2 / n_a + s_b^2 / n_b) with sample variances (ddof 1),
    referred to a t distribution with the Welch-Satterthwaite degrees of freedom
    df = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1)), v = s^2 / n.
    `alternative` "greater" tests A > B (the claim's direction), "less" A < B, "two-sided" A != B.
    Assumptions: the seeds of each side are independent draws of the score (one training run a seed),
    roughly normal; the variances of the two sides may differ. With 3 seeds a side df is about 2 to 4,
    so a 5% one-sided test needs t of about 2.1 to 2.9, not the 2 standard errors of a normal rule.
    Interval: the two-sided (1 - alpha) interval diff +- t_{1 - alpha/2, df} * se, whatever `alternative`
    is (so the report can show the same 95% interval beside a one-sided p).
    With fewer than two values on a side there is no variance to estimate, and with zero variance on
    both sides no t: p, t, df and the interval are nan and `reason` says why.
    """
    _check_alternative(alternative)
    _check_alpha(alpha)
    a, b = _values(a, "a"), _values(b, "b")
    diff = float(a.mean() - b.mean())

    def no_test(reason: str) -> WelchResult:
        return WelchResult(diff, NAN, NAN, NAN, NAN, NAN, len(a), len(b), alternative, reason)

    if len(a) < 2 or len(b) < 2:
        return no_test(f"{len(a)} vs {len(b)} seeds: Welch's test needs at least 2 seeds a side")
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return no_test("every seed of both sides scored the same: no spread to test against")
    res = sps.ttest_ind(a, b, equal_var=False, alternative=alternative)
    ci = sps.ttest_ind(a, b, equal_var=False, alternative="two-sided").confidence_interval(1 - alpha)
    return WelchResult(diff, float(ci.low), float(ci.high), float(res.df), float(res.statistic), float(res.pvalue),
                       len(a), len(b), alternative)


@dataclass(frozen=True)
class RelativeDifference:
    percent: float  # 100 * (mean(a) / mean(b) - 1)
    ci_low: float  # two-sided (1 - alpha) Fieller interval, percent; nan when it is unbounded or not defined
    ci_high: float
    df: float  # Welch-Satterthwaite df of mean(a) - ratio * mean(b) at the estimated ratio
    method: str
    reason: str = ""

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def __str__(self) -> str:
        if self.reason:
            return f"{self.percent:+.1f}% (no interval: {self.reason})"
        return f"{self.percent:+.1f}% [{self.ci_low:+.1f}%, {self.ci_high:+.1f}%] ({self.method})"


FIELLER = "Fieller, Welch-Satterthwaite df"


def relative_difference_ci(a, b, alpha: float = 0.05) -> RelativeDifference:
    """The relative change of A over B in percent, 100 * (mean(a) / mean(b) - 1), with a Fieller interval.

    `a`, `b`: per-seed values of one metric (positive numbers, e.g. NDCG@10) of each model.
    Interval (Fieller's theorem for a ratio of independent means): the set of ratios r for which
    mean(a) - r * mean(b) is not significantly different from 0, that is
    (mean(a) - r mean(b))^2 <= q^2 (v_a + r^2 v_b), v = s^2 / n, q = t_{1 - alpha/2, df}, with df the
    Welch-Satterthwaite df of that difference at the estimated ratio. Solving the quadratic gives
    [r_low, r_high], shown as 100 * (r - 1).
    Why Fieller: the ratio's sampling distribution is skewed when the denominator is noisy, and Fieller
    keeps that asymmetry, where the delta method forces a symmetric interval; a bootstrap over seeds
    has only 10 distinct resamples of 3 seeds, too few for percentiles.
    Assumptions: as `welch` (independent, roughly normal seeds; unequal variances) and mean(b) > 0.
    When mean(b) is not clearly above 0 (q^2 v_b >= mean(b)^2) the Fieller set is unbounded: the interval
    is nan and `reason` says so; with fewer than 2 seeds a side, likewise.
    """
    _check_alpha(alpha)
    a, b = _values(a, "a"), _values(b, "b")
    ma, mb = float(a.mean()), float(b.mean())
    if mb <= 0:
        raise StatsError(f"mean(b) = {mb:g}: a relative change needs a reference with a positive mean")
    ratio = ma / mb
    percent = 100 * (ratio - 1)

    def no_interval(reason: str) -> RelativeDifference:
        return RelativeDifference(percent, NAN, NAN, NAN, FIELLER, reason)

    if len(a) < 2 or len(b) < 2:
        return no_interval(f"{len(a)} vs {len(b)} seeds: an interval needs at least 2 seeds a side")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va == 0 and vb == 0:
        return no_interval("every seed of both sides scored the same: no spread")
    vr = ratio**2 * vb  # variance of ratio * mean(b)
    df = (va + vr) ** 2 / (va**2 / (len(a) - 1) + vr**2 / (len(b) - 1))
    q2 = sps.t.ppf(1 - alpha / 2, df) ** 2
    # (mb^2 - q2 vb) r^2 - 2 ma mb r + (ma^2 - q2 va) <= 0
    qa, qb, qc = mb**2 - q2 * vb, -2 * ma * mb, ma**2 - q2 * va
    if qa <= 0:
        return RelativeDifference(percent, NAN, NAN, float(df), FIELLER,
                                  "the reference's mean is not significantly above 0: the Fieller interval is unbounded")
    disc = math.sqrt(max(qb**2 - 4 * qa * qc, 0.0))  # > 0 whenever qa > 0 and there is spread
    lo, hi = (-qb - disc) / (2 * qa), (-qb + disc) / (2 * qa)
    return RelativeDifference(percent, 100 * (lo - 1), 100 * (hi - 1), float(df), FIELLER)


# ------------------------------------------------------------------------------ user-level tests
_METRIC = re.compile(r"^(HR|NDCG)@([1-9][0-9]*)$")


def per_user_metric(ranks, metric: str = "NDCG@10") -> np.ndarray:
    """One value a user from 0-based ranks of the positives (0 = ranked first).

    "HR@k": 1 if rank < k else 0; "NDCG@k": 1 / log2(rank + 2) if rank < k else 0 (one relevant item);
    "MRR": the reciprocal rank 1 / (rank + 1). The means over users are `evaluation.metrics_from_ranks`.
    """
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0:
        raise StatsError(f"ranks must be a non-empty 1-D array (one a user); got shape {r.shape}")
    if not np.issubdtype(r.dtype, np.integer):
        if not np.isfinite(r).all() or (r != np.round(r)).any():
            raise StatsError("ranks must be whole numbers (0-based ranks of the positives)")
    if (r < 0).any():
        raise StatsError(f"ranks must be >= 0 (0-based); found {int(r.min())}")
    r = r.astype(np.float64)
    if metric == "MRR":
        return 1.0 / (r + 1.0)
    m = _METRIC.match(metric)
    if not m:
        raise StatsError(f"metric={metric!r}: use 'MRR', 'HR@k' or 'NDCG@k' (k a positive whole number)")
    kind, k = m.group(1), int(m.group(2))
    hit = r < k
    if kind == "HR":
        return hit.astype(np.float64)
    return np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)


def _by_seed(x, name: str) -> np.ndarray:
    """seeds x users float array from a list of per-seed arrays or a 2-D array (1-D: one seed)."""
    if isinstance(x, np.ndarray):
        arr = x.astype(float, copy=False)
    else:
        rows = [np.asarray(v, dtype=float) for v in x]
        if not rows:
            raise StatsError(f"{name} holds no seeds")
        lengths = {len(v) for v in rows}
        if len(lengths) != 1 or any(v.ndim != 1 for v in rows):
            raise StatsError(f"{name}: every seed must score the same users (1-D arrays of one length); "
                             f"got lengths {[len(v) for v in rows]}")
        arr = np.stack(rows)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise StatsError(f"{name} must be seeds x users (non-empty); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise StatsError(f"{name} holds non-finite per-user values; check the ranks it came from")
    return arr


def _pair(a_by_seed, b_by_seed) -> tuple[np.ndarray, np.ndarray]:
    a, b = _by_seed(a_by_seed, "a_by_seed"), _by_seed(b_by_seed, "b_by_seed")
    if a.shape[1] != b.shape[1]:
        raise StatsError(f"a has {a.shape[1]} users and b {b.shape[1]}: a paired test needs the same users "
                         "(and candidates) on both sides, in the same order")
    return a, b


@dataclass(frozen=True)
class BootstrapResult:
    diff: float  # mean over seeds and users of A minus the same of B
    ci_low: float  # two-sided (1 - alpha) percentile interval of the difference
    ci_high: float
    p: float  # bootstrap p-value under `alternative`
    alternative: str
    n_boot: int
    n_seeds_a: int
    n_seeds_b: int
    n_users: int
    percent: float  # relative change of A's mean over B's, 100 * (mean A / mean B - 1); nan if mean B <= 0
    percent_ci_low: float  # its percentile interval from the same replicates
    percent_ci_high: float
    note: str = ""  # e.g. "one seed of A: the interval holds no seed variance"

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    @property
    def percent_ci(self) -> tuple[float, float]:
        return (self.percent_ci_low, self.percent_ci_high)

    def __str__(self) -> str:
        s = (f"difference {self.diff:+.4g} [{self.ci_low:+.4g}, {self.ci_high:+.4g}] "
             f"({self.percent:+.1f}% [{self.percent_ci_low:+.1f}%, {self.percent_ci_high:+.1f}%]), paired bootstrap over "
             f"{self.n_seeds_a}+{self.n_seeds_b} seeds x {self.n_users} users, p ({self.alternative}) = {self.p:.3g}")
        return s + (f" ({self.note})" if self.note else "")


_CHUNK = 100  # bootstrap replicates whose user draws are made at once


def _multinomial_counts(rng: np.random.Generator, n: int, reps: int) -> np.ndarray:
    """reps x n: how often each of n users is drawn in each of `reps` resamples of n with replacement."""
    idx = rng.integers(0, n, size=(reps, n), dtype=np.int64)
    idx += np.arange(reps, dtype=np.int64)[:, None] * n  # row r counts into bins r*n .. r*n + n - 1
    return np.bincount(idx.ravel(), minlength=reps * n).reshape(reps, n).astype(np.float64)


def _bootstrap_p(draws: np.ndarray, alternative: str) -> float:
    """p from the percentile bootstrap: the share of resampled differences on the null's side of 0
    (ties with 0 count against the claim), with the +1 correction so it is never 0."""
    r = len(draws)
    p_greater = (1 + np.count_nonzero(draws <= 0)) / (r + 1)  # evidence for A > B is few draws <= 0
    p_less = (1 + np.count_nonzero(draws >= 0)) / (r + 1)
    if alternative == "greater":
        return float(p_greater)
    if alternative == "less":
        return float(p_less)
    return float(min(1.0, 2 * min(p_greater, p_less)))


def paired_bootstrap(a_by_seed, b_by_seed, n_boot: int = 10000, seed: int = 0, statistic: str = "mean",
                     alternative: str = "greater", alpha: float = 0.05) -> BootstrapResult:
    """Difference of mean per-user metrics of A and B on the same users, with a two-level paired bootstrap.

    Inputs: per-user values (`per_user_metric`) of A and of B, seeds x users (a 2-D array or a list of
    1-D arrays, one a training seed); user j must be the same user with the same candidates in every
    row of both sides (a fixed evaluation protocol). The seed counts of A and B may differ.
    Estimate: D = mean over A's seeds and users of A - the same of B.
    Resampling (one bootstrap replicate): level 1, A's seeds and B's seeds are each drawn with
    replacement (the two models' training runs are independent); level 2, the users are drawn with
    replacement once and that draw is used for every seed of both models, since users are crossed with
    seeds, not nested in them: a hard user is hard in every run, and drawing users afresh per seed
    would average away that shared part of the user variance. Using the same users for A and B is the
    pairing. Interval: the alpha/2 and 1 - alpha/2 percentiles of the n_boot replicates; the same
    replicates give the percentile interval of the relative change 100 * (mean A / mean B - 1).
    p-value: the share of replicates at or below 0 ("greater": A > B), at or above 0 ("less"), or twice
    the smaller ("two-sided"), each as (1 + count) / (n_boot + 1), so p >= 1 / (n_boot + 1).
    Assumptions: users are exchangeable draws from the population of users; seeds are exchangeable
    draws of training runs. With 3 seeds a side level 1 has only 10 distinct resamples, and the
    bootstrap variance of a mean over S seeds is (S - 1) / S of the usual s^2 / S (2/3 with 3 seeds), so
    the seed part of the interval is somewhat narrow; with one seed a side it has none (`note` says so):
    the interval then speaks for these training runs, not for retraining.
    Seeded by `seed`: the same inputs and seed give the same result. The users' draws are made
    `_CHUNK` replicates at a time (memory about 60 MB for 22k users).
    Only statistic="mean" is provided: the report's metrics are means over users.
    """
    if statistic != "mean":
        raise StatsError(f"statistic={statistic!r}: only 'mean' (the mean over users, as the report's metrics) "
                         "is provided")
    _check_alternative(alternative)
    _check_alpha(alpha)
    if int(n_boot) != n_boot or n_boot < 100:
        raise StatsError(f"n_boot={n_boot!r}: use a whole number of at least 100 (10000 for a 95% interval)")
    a, b = _pair(a_by_seed, b_by_seed)
    n_boot = int(n_boot)
    sa, sb, n_users = a.shape[0], b.shape[0], a.shape[1]
    diff = float(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    wa = rng.multinomial(sa, np.full(sa, 1 / sa), size=n_boot) / sa  # (R, S_a) seed weights of A
    wb = rng.multinomial(sb, np.full(sb, 1 / sb), size=n_boot) / sb  # (R, S_b)
    # per-seed user means of every replicate come from one matrix product: counts (R x U) @ values (U x S)
    values = np.concatenate([a, b]).T  # (U, S_a + S_b)
    draws = np.empty(n_boot)  # A - B of every replicate
    means_b = np.empty(n_boot)  # B's mean of every replicate, for the relative change
    for start in range(0, n_boot, _CHUNK):
        stop = min(start + _CHUNK, n_boot)
        seed_means = _multinomial_counts(rng, n_users, stop - start) @ values / n_users  # (R, S_a + S_b)
        means_b[start:stop] = (wb[start:stop] * seed_means[:, sa:]).sum(1)
        draws[start:stop] = (wa[start:stop] * seed_means[:, :sa]).sum(1) - means_b[start:stop]
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    if b.mean() > 0 and (means_b > 0).all():
        percent = 100 * (a.mean() / b.mean() - 1)
        p_lo, p_hi = np.quantile(100 * draws / means_b, [alpha / 2, 1 - alpha / 2])
    else:  # a reference that scores 0 (on some resample) has no relative change
        percent = p_lo = p_hi = NAN
    one = [side for side, s in (("A", sa), ("B", sb)) if s == 1]
    note = (f"one seed of {' and '.join(one)}: the interval holds no seed variance of that side" if one else "")
    return BootstrapResult(diff, float(lo), float(hi), _bootstrap_p(draws, alternative), alternative, n_boot,
                           sa, sb, n_users, float(percent), float(p_lo), float(p_hi), note)


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # scipy's W (sum of ranks of the positive differences for a one-sided test)
    p: float
    alternative: str
    mean_diff: float  # mean over users of the seed-averaged differences
    n_users: int
    n_nonzero: int  # users whose seed-averaged difference is not 0 (the ones the test ranks)
    reason: str = ""

    def __str__(self) -> str:
        if self.reason:
            return f"mean difference {self.mean_diff:+.4g}; no test: {self.reason}"
        return (f"Wilcoxon signed-rank over {self.n_nonzero} of {self.n_users} users (seed-averaged), "
                f"p ({self.alternative}) = {self.p:.3g}")


def paired_wilcoxon(a_by_seed, b_by_seed, alternative: str = "greater") -> WilcoxonResult:
    """Wilcoxon signed-rank test (scipy.stats.wilcoxon) on per-user differences averaged over seeds.

    Inputs as `paired_bootstrap`. Each user's value is averaged over A's seeds and over B's seeds, and
    the test is on d_u = mean_s A[s, u] - mean_s B[s, u]. Users with d_u = 0 (both models miss the
    top-k in every run, common for HR@k and NDCG@k) are dropped (zero_method="wilcox"); with thousands
    of users scipy uses the normal approximation. Null: the distribution of d_u is symmetric about 0.
    Assumptions: users independent; it tests location of the per-user differences (a median-like shift),
    not the difference of means, and it treats the seed-averaged values as fixed: seed variance is not
    in it, so read it beside the bootstrap, not instead of it. No interval is given.
    With every d_u = 0 there is nothing to rank: p is nan and `reason` says so.
    """
    _check_alternative(alternative)
    a, b = _pair(a_by_seed, b_by_seed)
    d = a.mean(0) - b.mean(0)
    nonzero = int(np.count_nonzero(d))
    mean_diff = float(d.mean())
    if nonzero == 0:
        return WilcoxonResult(NAN, NAN, alternative, mean_diff, len(d), 0,
                              "every user's seed-averaged difference is 0: nothing to rank")
    res = sps.wilcoxon(d, zero_method="wilcox", alternative=alternative)
    return WilcoxonResult(float(res.statistic), float(res.pvalue), alternative, mean_diff, len(d), nonzero)


# ------------------------------------------------------------------------------ many claims, orderings
def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (controls the family-wise error rate over the claims).

    With the m p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is
    min(1, max over j <= i of (m - j + 1) p_(j)); a claim is significant at level alpha after correction
    when its adjusted p is at or below alpha, exactly the claims Holm's procedure rejects.
    Assumptions: none on the dependence between the tests (Holm is valid under any dependence).
    nan-safe: a nan (a claim that could not be tested) stays nan in the output and does not count in m.
    Returns an array of the input's shape.
    """
    p = np.asarray(pvalues, dtype=float)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if ((flat[ok] < 0) | (flat[ok] > 1)).any():
        raise StatsError(f"p-values must lie in [0, 1]; got {flat[ok][(flat[ok] < 0) | (flat[ok] > 1)].tolist()}")
    out = np.full(flat.shape, NAN)
    valid = flat[ok]
    m = len(valid)
    if m:
        order = np.argsort(valid, kind="stable")
        scaled = (m - np.arange(m)) * valid[order]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
        out[ok] = adjusted
    return out.reshape(p.shape)


@dataclass(frozen=True)
class KendallResult:
    tau: float  # Kendall's tau-b, 1 = the same ordering, -1 = reversed
    p: float  # scipy's p-value under `alternative` (exact for small n without ties)
    n: int  # models compared
    alternative: str
    reason: str = ""

    def __str__(self) -> str:
        if self.reason:
            return f"Kendall's tau: no test ({self.reason})"
        return f"Kendall's tau-b = {self.tau:+.2f} over {self.n} models, p ({self.alternative}) = {self.p:.3g}"


def _as_ranks(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two aligned numeric vectors from: two mappings name -> score, two orderings of the same names
    (best first), or two score vectors of the same models in the same order."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise StatsError("give both sides as mappings model -> score, or neither")
        if set(a) != set(b):
            raise StatsError(f"the two mappings score different models: only in the first {sorted(set(a) - set(b))}, "
                             f"only in the second {sorted(set(b) - set(a))}")
        keys = list(a)
        return _values([a[k] for k in keys], "a"), _values([b[k] for k in keys], "b")
    if isinstance(a, str) or isinstance(b, str):
        raise StatsError("give two orderings as lists of names, not strings")
    a, b = list(a), list(b)  # sequences, arrays, pandas Series
    if a and all(isinstance(x, str) for x in a + b):
        if len(set(a)) != len(a) or len(set(b)) != len(b) or set(a) != set(b):
            raise StatsError(f"two orderings must each list the same models once; got {list(a)} and {list(b)}")
        pos_b = {name: i for i, name in enumerate(b)}
        return np.arange(len(a), dtype=float), np.array([pos_b[name] for name in a], dtype=float)
    x, y = _values(a, "a"), _values(b, "b")
    if len(x) != len(y):
        raise StatsError(f"the score vectors have {len(x)} and {len(y)} models: give the same models in the same order")
    return x, y


def kendall_tau(a, b, alternative: str = "two-sided") -> KendallResult:
    """Kendall's tau-b between two orderings of the same models (scipy.stats.kendalltau).

    `a`, `b`: two orderings of model names (best first), two score vectors of the same models in the
    same order (e.g. NDCG@10 under sampled 1+999 and under full ranking), or two mappings model -> score.
    tau-b counts concordant minus discordant pairs, corrected for ties; 1: the same ordering, -1: reversed.
    p: scipy's test of tau = 0 (exact for small n without ties, else a normal approximation); with 3
    models the smallest two-sided p is 1/3, so agreement of few models is described by tau, not tested.
    With fewer than 2 models, or one side all tied, tau is undefined: nan and a `reason`.
    """
    _check_alternative(alternative)
    x, y = _as_ranks(a, b)
    if len(x) < 2:
        return KendallResult(NAN, NAN, len(x), alternative, "fewer than 2 models: no pairs to compare")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return KendallResult(NAN, NAN, len(x), alternative, "every model ties on one side: no ordering")
    res = sps.kendalltau(x, y, alternative=alternative)
    return KendallResult(float(res.statistic), float(res.pvalue), len(x), alternative)


# ------------------------------------------------------------------------------ the verdict
def decide(p_adjusted: float, effect_ci, alpha: float = 0.05, p_adjusted_other_way: float | None = None) -> str:
    """The verdict on a one-sided claim "A scores above B".

    `p_adjusted`: the claim's Holm-adjusted one-sided p-value for A > B; `effect_ci`: (low, high), a
    two-sided interval of A - B (or of the relative change); `p_adjusted_other_way`: optionally the
    adjusted p-value of the one-sided test A < B.
    HOLDS if p_adjusted < alpha; FAILS if the interval lies entirely below 0 or p_adjusted_other_way < alpha;
    otherwise INCONCLUSIVE (also when the p-value or the interval is nan: no test could be made).
    A significant p for A > B together with evidence for A < B is contradictory input and an error.
    """
    _check_alpha(alpha)
    try:
        low, high = (float(v) for v in effect_ci)
    except (TypeError, ValueError) as exc:
        raise StatsError(f"effect_ci must be a pair (low, high) of numbers; got {effect_ci!r}") from exc
    if low == low and high == high and low > high:
        raise StatsError(f"effect_ci = ({low}, {high}): its low end is above its high end")
    p = float(p_adjusted)
    other = NAN if p_adjusted_other_way is None else float(p_adjusted_other_way)
    holds = p < alpha  # False for nan
    fails = high < 0 or other < alpha  # False for nan
    if holds and fails:
        raise StatsError(f"contradictory evidence: adjusted p = {p:.3g} for A > B, yet interval ({low:.3g}, {high:.3g}) "
                         f"and p other way = {other:.3g}; check that the p-value and the interval are of the same claim")
    return HOLDS if holds else FAILS if fails else INCONCLUSIVE
