"""The report's statistics on cases with a closed-form or hand-computed answer."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from slmrec_lib import stats as st
from slmrec_lib.evaluation import metrics_from_ranks


# ------------------------------------------------------------------------------ Welch
A3, B3 = [0.172, 0.165, 0.181], [0.141, 0.139, 0.150]


def _welch_by_hand(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    t = (a.mean() - b.mean()) / se
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return a.mean() - b.mean(), se, t, df


def test_welch_matches_the_formula_and_scipy():
    diff, se, t, df = _welch_by_hand(A3, B3)
    r = st.welch(A3, B3)
    assert r.diff == pytest.approx(diff) and r.t == pytest.approx(t) and r.df == pytest.approx(df)
    assert r.p == pytest.approx(sps.t.sf(t, df))  # one-sided, A > B
    q = sps.t.ppf(0.975, df)
    assert r.ci == pytest.approx((diff - q * se, diff + q * se))
    ref = sps.ttest_ind(A3, B3, equal_var=False, alternative="greater")
    assert r.p == pytest.approx(ref.pvalue) and r.t == pytest.approx(ref.statistic)
    two = st.welch(A3, B3, alternative="two-sided")
    assert two.p == pytest.approx(2 * sps.t.sf(abs(t), df)) and two.ci == pytest.approx(r.ci)
    assert st.welch(A3, B3, alternative="less").p == pytest.approx(sps.t.cdf(t, df))
    assert not r.reason and "Welch" in str(r)


def test_welch_is_stricter_than_two_standard_errors():
    # 2.1 standard errors apart, 3 seeds a side: the old rule (2 s.e.) said "holds"; one-sided Welch with 4 df needs 2.13
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0])
    shift = 2.1 * math.sqrt(2 / 3) - 1.0  # se = sqrt(1/3 + 1/3)
    r = st.welch(a + shift, b)
    assert r.t == pytest.approx(2.1) and r.df == pytest.approx(4.0)
    assert r.p > 0.05 and st.decide(r.p, r.ci) == st.INCONCLUSIVE


def test_welch_without_a_test():
    one = st.welch([0.2], [0.1, 0.12, 0.11])
    assert one.diff == pytest.approx(0.09) and math.isnan(one.p) and math.isnan(one.ci_low) and "2 seeds" in one.reason
    flat = st.welch([0.2, 0.2], [0.1, 0.1])
    assert math.isnan(flat.p) and "same" in flat.reason
    assert st.decide(one.p, one.ci) == st.INCONCLUSIVE


@pytest.mark.parametrize("bad, match", [(([], [1.0]), "non-empty"), (([1.0, float("nan")], [1.0, 2.0]), "non-finite"),
                                        (([[1.0, 2.0]], [1.0, 2.0]), "1-D")])
def test_welch_bad_input(bad, match):
    with pytest.raises(st.StatsError, match=match):
        st.welch(*bad)


def test_welch_bad_options():
    with pytest.raises(st.StatsError, match="alternative"):
        st.welch(A3, B3, alternative="bigger")
    with pytest.raises(st.StatsError, match="alpha"):
        st.welch(A3, B3, alpha=5)


# ------------------------------------------------------------------------------ relative difference
def test_fieller_endpoints_solve_its_equation():
    r = st.relative_difference_ci(A3, B3)
    a, b = np.asarray(A3), np.asarray(B3)
    ratio = a.mean() / b.mean()
    assert r.percent == pytest.approx(100 * (ratio - 1))
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    df = (va + ratio**2 * vb) ** 2 / (va**2 / 2 + ratio**4 * vb**2 / 2)
    assert r.df == pytest.approx(df)
    q2 = sps.t.ppf(0.975, df) ** 2
    for end in r.ci:
        rho = 1 + end / 100
        assert (a.mean() - rho * b.mean()) ** 2 == pytest.approx(q2 * (va + rho**2 * vb))
    assert r.ci_low < r.percent < r.ci_high
    # the ratio's interval is skewed upwards: the top end lies further from the estimate than the bottom
    assert r.ci_high - r.percent > r.percent - r.ci_low


def test_fieller_with_an_exact_reference_is_the_t_interval_scaled():
    a, b = np.array([0.30, 0.33, 0.36, 0.31]), np.array([0.25, 0.25, 0.25])
    r = st.relative_difference_ci(a, b)
    half = sps.t.ppf(0.975, 3) * a.std(ddof=1) / math.sqrt(4)  # t * s / sqrt(n), 4 seeds
    assert r.df == pytest.approx(3)
    assert r.ci == pytest.approx((100 * ((a.mean() - half) / 0.25 - 1), 100 * ((a.mean() + half) / 0.25 - 1)))


def test_fieller_unbounded_and_undefined():
    noisy = st.relative_difference_ci([0.2, 0.21, 0.19], [0.001, 0.2, 0.01])
    assert math.isnan(noisy.ci_low) and "unbounded" in noisy.reason and noisy.percent > 0
    one = st.relative_difference_ci([0.2], [0.1, 0.11])
    assert one.percent == pytest.approx(100 * (0.2 / 0.105 - 1)) and math.isnan(one.ci_high) and one.reason
    with pytest.raises(st.StatsError, match="positive mean"):
        st.relative_difference_ci([0.1, 0.2], [0.0, 0.0])


# ------------------------------------------------------------------------------ per-user metrics
def test_per_user_metric_by_hand():
    ranks = np.array([0, 1, 9, 10])
    assert st.per_user_metric(ranks, "HR@10").tolist() == [1, 1, 1, 0]
    assert st.per_user_metric(ranks, "NDCG@10") == pytest.approx([1, 1 / math.log2(3), 1 / math.log2(11), 0])
    assert st.per_user_metric(ranks, "MRR") == pytest.approx([1, 1 / 2, 1 / 10, 1 / 11])
    assert st.per_user_metric(ranks, "HR@1").tolist() == [1, 0, 0, 0]


def test_per_user_metric_means_are_the_evaluators():
    ranks = np.random.default_rng(3).integers(0, 1000, size=500)
    ref = metrics_from_ranks(ranks, ks=(1, 5, 10, 20))
    for metric in ("HR@5", "NDCG@10", "NDCG@20", "MRR"):
        assert st.per_user_metric(ranks, metric).mean() == pytest.approx(ref[metric])


@pytest.mark.parametrize("ranks, metric, match", [([0, -1], "MRR", ">= 0"), ([0.5, 1], "MRR", "whole"),
                                                  ([0, 1], "NDCG", "metric"), ([0, 1], "HR@0", "metric"),
                                                  ([], "MRR", "non-empty")])
def test_per_user_metric_bad_input(ranks, metric, match):
    with pytest.raises(st.StatsError, match=match):
        st.per_user_metric(ranks, metric)


# ------------------------------------------------------------------------------ paired bootstrap
def test_bootstrap_collapses_on_a_constant_shift():
    rng = np.random.default_rng(0)
    a = np.tile(rng.random(1000), (3, 1))  # users differ; every seed the same
    r = st.paired_bootstrap(a, a - 0.1, n_boot=1000)
    assert r.diff == pytest.approx(0.1)
    assert r.ci == pytest.approx((0.1, 0.1), abs=1e-9)
    assert r.p == pytest.approx(1 / 1001)
    assert r.percent == pytest.approx(100 * (a.mean() / (a.mean() - 0.1) - 1))
    scaled = st.paired_bootstrap(a, 0.8 * a, n_boot=1000)  # B 20% below A for every user: A is 25% above B
    assert scaled.percent == pytest.approx(25.0) and scaled.percent_ci == pytest.approx((25.0, 25.0), abs=1e-6)
    two = st.paired_bootstrap(a, a - 0.1, n_boot=1000, alternative="two-sided")
    assert two.p == pytest.approx(2 / 1001)
    assert st.paired_bootstrap(a, a - 0.1, n_boot=1000, alternative="less").p == pytest.approx(1.0)


def test_bootstrap_covers_zero_when_a_and_b_are_alike():
    rng = np.random.default_rng(1)
    a = [st.per_user_metric(rng.integers(0, 1000, 3000)) for _ in range(3)]
    b = [st.per_user_metric(rng.integers(0, 1000, 3000)) for _ in range(3)]
    r = st.paired_bootstrap(a, b, n_boot=2000, alternative="two-sided")
    assert r.ci_low < 0 < r.ci_high and r.p > 0.05
    assert r.percent_ci_low < r.percent < r.percent_ci_high and r.percent_ci_low < 0 < r.percent_ci_high
    assert r.n_seeds_a == r.n_seeds_b == 3 and r.n_users == 3000 and not r.note


def test_bootstrap_null_rejection_rate_is_near_alpha():
    rng = np.random.default_rng(2)
    rejected = 0
    for _ in range(40):
        a, b = rng.normal(size=(3, 300)), rng.normal(size=(3, 300))
        rejected += st.paired_bootstrap(a, b, n_boot=400, seed=int(rng.integers(1 << 30)),
                                        alternative="two-sided").p < 0.05
    assert rejected <= 8  # 5% of 40 is 2; 8 or more has probability < 0.001 for a test at level 5%


def test_bootstrap_one_seed_is_the_plain_paired_bootstrap():
    rng = np.random.default_rng(4)
    a = rng.normal(0.3, 1.0, 4000)
    b = a - 0.05 + rng.normal(0, 0.5, 4000)
    d = a - b
    r = st.paired_bootstrap(a, b, n_boot=4000)
    half = sps.norm.ppf(0.975) * d.std() / math.sqrt(len(d))  # normal-theory interval of a mean
    assert r.diff == pytest.approx(d.mean())
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(half, rel=0.1)
    assert abs((r.ci_low + r.ci_high) / 2 - d.mean()) < 0.2 * half
    assert "one seed" in r.note


def test_bootstrap_holds_the_seed_variance():
    # every user alike within a run, runs differ: only level 1 (seeds) has spread
    a = np.repeat([[0.30], [0.32], [0.34]], 500, axis=1)
    b = np.repeat([[0.31], [0.31], [0.31]], 500, axis=1)
    r = st.paired_bootstrap(a, b, n_boot=3000, alternative="two-sided")
    assert r.diff == pytest.approx(0.01)
    assert r.ci_low == pytest.approx(-0.01) and r.ci_high == pytest.approx(0.03)  # all of A's seeds 0.30 .. 0.34
    assert r.percent_ci == pytest.approx((-100 * 0.01 / 0.31, 100 * 0.03 / 0.31))
    assert r.p > 0.05


def test_bootstrap_relative_change_needs_a_scoring_reference():
    r = st.paired_bootstrap(np.ones((2, 50)), np.zeros((2, 50)), n_boot=200)
    assert r.diff == pytest.approx(1.0) and math.isnan(r.percent) and math.isnan(r.percent_ci_low)


def test_bootstrap_is_seeded_and_takes_lists_or_arrays():
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 700)), rng.random((3, 700))
    r1 = st.paired_bootstrap(a, b, n_boot=500, seed=7)
    assert st.paired_bootstrap(list(a), list(b), n_boot=500, seed=7) == r1
    assert st.paired_bootstrap(a, b, n_boot=500, seed=8).ci != r1.ci


@pytest.mark.parametrize("kwargs, match", [(dict(b_by_seed=np.zeros((3, 9))), "same users"),
                                           (dict(a_by_seed=[np.zeros(10), np.zeros(9)]), "same users"),
                                           (dict(statistic="median"), "only 'mean'"),
                                           (dict(n_boot=10), "n_boot"),
                                           (dict(a_by_seed=np.full((2, 10), np.nan)), "non-finite")])
def test_bootstrap_bad_input(kwargs, match):
    args = dict(a_by_seed=np.zeros((3, 10)), b_by_seed=np.zeros((3, 10)))
    args.update(kwargs)
    with pytest.raises(st.StatsError, match=match):
        st.paired_bootstrap(**args)


# ------------------------------------------------------------------------------ Wilcoxon
def test_wilcoxon_is_scipys_on_seed_averaged_differences():
    rng = np.random.default_rng(6)
    users = rng.random(400)  # how easy each user is, shared by every run
    a = users + rng.normal(0, 0.05, (3, 400))  # three seeds of A
    b = users - 0.03 + rng.normal(0, 0.05, (2, 400))  # two seeds of B, 0.03 lower
    r = st.paired_wilcoxon(a, b)
    d = a.mean(0) - b.mean(0)
    ref = sps.wilcoxon(d, alternative="greater")
    assert r.p == pytest.approx(ref.pvalue) and r.statistic == pytest.approx(ref.statistic)
    assert r.mean_diff == pytest.approx(d.mean()) and r.n_nonzero == 400 and r.p < 0.01
    assert st.paired_wilcoxon(b, a).p > 0.99


def test_wilcoxon_drops_ties_and_says_when_nothing_is_left():
    a = np.array([[1.0, 0.0, 0.0, 0.5, 0.2]])
    b = np.array([[0.5, 0.0, 0.0, 0.5, 0.1]])
    assert st.paired_wilcoxon(a, b).n_nonzero == 2
    same = st.paired_wilcoxon(a, a)
    assert math.isnan(same.p) and "nothing to rank" in same.reason


# ------------------------------------------------------------------------------ Holm
def _holm_reference(p):
    """Holm by its definition, one p-value at a time, skipping nan."""
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(idx)
    ranked = sorted(idx, key=lambda i: (p[i], i))
    out = [float("nan")] * len(p)
    for pos, i in enumerate(ranked):
        out[i] = min(1.0, max((m - j) * p[ranked[j]] for j in range(pos + 1)))
    return out


def test_holm_by_hand():
    assert st.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.allclose(st.holm([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.06, 0.06], equal_nan=True)
    assert st.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert st.holm([0.02]) == pytest.approx([0.02])
    assert st.holm([]).shape == (0,) and np.isnan(st.holm([np.nan, np.nan])).all()


def test_holm_against_the_definition_and_the_step_down_rejections():
    rng = np.random.default_rng(7)
    for _ in range(50):
        p = rng.random(8) ** 3
        p[rng.random(8) < 0.2] = np.nan
        p[1] = p[0]  # a tie
        adj = st.holm(p)
        assert np.allclose(adj, _holm_reference(list(p)), equal_nan=True)
        valid = np.flatnonzero(~np.isnan(p))
        m, alpha = len(valid), 0.05
        rejected = set()  # Holm's procedure: reject in order while p_(k) <= alpha / (m - k)
        for k, i in enumerate(sorted(valid, key=lambda i: p[i])):
            if p[i] > alpha / (m - k):
                break
            rejected.add(i)
        assert rejected == {i for i in valid if adj[i] <= alpha}


def test_holm_bad_input():
    with pytest.raises(st.StatsError, match=r"\[0, 1\]"):
        st.holm([0.1, 1.5])


# ------------------------------------------------------------------------------ Kendall
def test_kendall_identical_and_reversed_orders():
    order = ["SASRec", "E4SRec_30", "E4SRec_4", "P5_30"]
    assert st.kendall_tau(order, order).tau == pytest.approx(1.0)
    assert st.kendall_tau(order, order[::-1]).tau == pytest.approx(-1.0)
    assert st.kendall_tau([0.1, 0.2, 0.3], [1, 2, 3]).tau == pytest.approx(1.0)


def test_kendall_counts_pairs():
    sampled = {"a": 0.40, "b": 0.35, "c": 0.30, "d": 0.20, "e": 0.10}
    full = {"a": 0.05, "b": 0.06, "c": 0.04, "d": 0.03, "e": 0.01}  # one of 10 pairs (a, b) swapped
    r = st.kendall_tau(sampled, full)
    assert r.tau == pytest.approx((9 - 1) / 10) and r.n == 5
    assert r.p == pytest.approx(sps.kendalltau(list(sampled.values()), list(full.values())).pvalue)
    assert st.kendall_tau(list("abcde"), list("bacde")).tau == pytest.approx(0.8)


def test_kendall_without_a_test_and_bad_input():
    assert "fewer than 2" in st.kendall_tau(["a"], ["a"]).reason
    assert math.isnan(st.kendall_tau([1.0, 1.0], [1.0, 2.0]).tau)
    with pytest.raises(st.StatsError, match="same models"):
        st.kendall_tau(["a", "b"], ["a", "c"])
    with pytest.raises(st.StatsError, match="only in the first"):
        st.kendall_tau({"a": 1, "b": 2}, {"a": 1, "c": 2})
    with pytest.raises(st.StatsError, match="same order"):
        st.kendall_tau([1, 2, 3], [1, 2])


# ------------------------------------------------------------------------------ decide
def test_decide_each_branch():
    assert st.decide(0.01, (0.5, 3.0)) == st.HOLDS
    assert st.decide(0.20, (-3.0, -0.5)) == st.FAILS
    assert st.decide(0.90, (-3.0, 0.5), p_adjusted_other_way=0.01) == st.FAILS
    assert st.decide(0.20, (-1.0, 2.0)) == st.INCONCLUSIVE
    assert st.decide(0.04, (-1.0, 2.0), alpha=0.01) == st.INCONCLUSIVE
    assert st.decide(float("nan"), (float("nan"), float("nan"))) == st.INCONCLUSIVE
    with pytest.raises(st.StatsError, match="contradictory"):
        st.decide(0.01, (-2.0, -1.0))
    with pytest.raises(st.StatsError, match="pair"):
        st.decide(0.01, 0.5)
    with pytest.raises(st.StatsError, match="low end"):
        st.decide(0.01, (2.0, 1.0))


def test_verdict_strings_are_the_reports():
    from slmrec_lib import book

    assert (st.HOLDS, st.FAILS, st.INCONCLUSIVE) == (book.HOLDS, book.FAILS, book.INCONCLUSIVE)


def test_kendall_takes_series_and_arrays():
    import pandas as pd

    s = pd.Series([0.3, 0.2, 0.1], index=["a", "b", "c"])
    assert st.kendall_tau(s, np.array([3.0, 1.0, 2.0])).tau == pytest.approx(1 / 3)
    with pytest.raises(st.StatsError, match="not strings"):
        st.kendall_tau("abc", "cba")
