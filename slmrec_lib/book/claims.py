"""The paper's claims and their verdicts from our rows, with the statistics named.

An accuracy claim reads "A scores above B" (A, B: `runs.Side`s). It is judged under every protocol
the rows hold (sampled 1+n, the paper's, and full ranking where present), side by side:
- score: per training seed of a model, the mean over the six main metrics of the relative change (%)
  against B's mean over seeds (metrics where B scores 0 are left out);
- seed-level test: Welch's unequal-variance t-test of A's per-seed scores against B's, one-sided
  (A > B), with its two-sided 95% interval of the difference in percent points (`stats.welch`); and
  the relative change of NDCG@10 with its 95% Fieller interval (`stats.relative_difference_ci`);
- user-level test, where every run of both models kept its per-user ranks: the two-level paired
  bootstrap over seeds and users of NDCG@10 (`stats.paired_bootstrap`, 10,000 replicates) and the
  Wilcoxon signed-rank test over users as a second opinion; a run without stored ranks is noted
  "predates stored ranks: seed-level test";
- the primary p-value (the bootstrap's where there is one, else Welch's) is Holm-adjusted over all
  the claims and protocols judged together (one call: a notebook's claims, or the report's), and the
  verdict is `stats.decide`: holds if the adjusted p < 0.05, does not hold if the 95% interval lies
  below 0 or the adjusted p of the other direction is < 0.05, else inconclusive (always with one seed
  a side and no stored ranks: there is no spread to test against).
Protocol agreement: per dataset, Kendall's tau-b between the models' orderings on NDCG@10 under the
sampled protocol and under full ranking.
An efficiency claim (a speed-up, a parameter share) is set against what the paper's figure means at
our depths (scaled by the depth ratio: the paper's student has 1/8 of E4SRec*'s 32 layers) and holds
within a relative tolerance `EFFICIENCY_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import stats
from ..stats import FAILS, HOLDS, INCONCLUSIVE
from .context import Book, BookError
from .paper import MAIN_METRICS, PAPER_DEPTH, PAPER_SMALL, average_improvement, paper_long, paper_row
from .runs import (BLOCKS_1, BLOCKS_2, DEEP, E4_SMALL, FULL, FULL_ONLINE, P5, SASREC, STUDENT, STUDENT_MS,
                   STUDENT_NORM, Side, groups, normalized, protocol_kind, protocols, rung_of, shuffled_of)

NOT_RUN = "not run"  # a claim of the ladder or the controls whose runs this machine lacks (a GPU profile)
NOT_MEASURED = "not measured"  # an efficiency claim without a timing benchmark where clocks are no measure
EFFICIENCY_TOLERANCE = 0.2  # relative slack around the paper's efficiency figures (scaled to our depths)
ALPHA = 0.05  # level of every test; intervals are 95%
PAIRED_METRIC = "NDCG@10"  # the metric of the user-level tests and of the Fieller interval
N_BOOT = 10000
SEED_TEST = "Welch t on per-seed avg. relative change"
NO_RANKS = "predates stored ranks: seed-level test"
COLUMNS = ["rq", "claim", "ours", "protocol", "test", "effect_pct", "ci_low", "ci_high", "p", "p_holm", "verdict",
           "ndcg10", "paired", "seeds", "paper", "detail"]


@dataclass(frozen=True)
class Claim:
    rq: str  # the paper's research question
    text: str  # the claim: `better` should score above `worse`
    better: Side
    worse: Side
    paper_says: str = ""  # the paper's evidence where its tables hold none (otherwise computed)


@dataclass(frozen=True)
class EfficiencyClaim:
    rq: str
    text: str
    measure: str  # "inference", "train" (speed-ups, higher is better) or "params" (share, lower is better)
    paper_value: float  # 8.0 (x), 6.6 (x), 0.13 (share)


CLAIMS = (
    Claim("RQ1", "the distilled 4-layer student with D_cos + D_norm + L_ms matches or beats E4SRec*", FULL, DEEP),
    Claim("RQ1", "depth helps E4SRec: E4SRec* beats E4SRec_4", DEEP, E4_SMALL),
    Claim("RQ1", "distillation helps a 4-layer model: SLMRec_4<-8 beats E4SRec_4", STUDENT, E4_SMALL),
    Claim("RQ1", "the LLM recommender beats SASRec", DEEP, SASREC),
    Claim("RQ1", "the LLM recommender beats the generative P5 on the same backbone", DEEP, P5),
    Claim("RQ3", "D_norm helps: + D_norm beats D_cos alone", STUDENT_NORM, STUDENT),
    Claim("RQ3", "L_ms helps: + L_ms beats D_cos alone", STUDENT_MS, STUDENT),
    Claim("RQ3", "both terms together beat D_cos alone", FULL, STUDENT),
    Claim("RQ4", "offline distillation (teacher trained first) beats online", FULL, FULL_ONLINE,
          "the paper trains the teacher first and reports that this works"),
    # b = 1 has no intermediate block end for the L_ms heads: its run is D_cos + D_norm only
    Claim("RQ5", "b = 4 blocks beats b = 1", FULL, BLOCKS_1, "b = 4 best, b = 1, 2 worse"),
    Claim("RQ5", "b = 4 blocks beats b = 2", FULL, BLOCKS_2, "b = 4 best, b = 1, 2 worse"),
)
LLM_BEATS_SASREC = CLAIMS[3]
DEEP_BCE = Side("e4srec", "depth", item_table="bce")  # E4SRec* reading the BCE rung's item table
SMALL_BCE = Side("e4srec", "small", item_table="bce")
# the baseline ladder (08): the paper's claim against every SASRec rung (SASREC names each), and what
# the item table does to the LLM
LADDER_CLAIMS = (
    LLM_BEATS_SASREC,
    Claim("RQ1", "the 4-layer LLM recommender beats SASRec", E4_SMALL, SASREC),
    Claim("ladder", "a stronger item table makes a stronger LLM: E4SRec* reading the CE table beats it reading "
          "the BCE table", DEEP, DEEP_BCE, "the paper reads one table (its SASRec's)"),
    Claim("ladder", "a stronger item table makes a stronger LLM: E4SRec_4 reading the CE table beats it reading "
          "the BCE table", E4_SMALL, SMALL_BCE, "the paper reads one table (its SASRec's)"),
    Claim("ladder", "the LLM lifts a weak table: E4SRec* reading the BCE table beats the BCE SASRec", DEEP_BCE,
          Side("sasrec", rung="bce"), "E4SRec* over SASRec: +42% on average (one table)"),
)


@dataclass(frozen=True)
class OrderClaim:
    """"`side` uses the order of a history": it scores higher on the plain histories than on the same
    histories with their items shuffled (same users, targets and candidates)."""

    rq: str
    text: str
    side: Side
    paper_says: str = ""


def control_sides(book: Book) -> dict[str, Side]:
    """The models of the depth controls by name (depths: `studies.control_depths`)."""
    from .. import studies

    depths = studies.control_depths(book.profile)
    out = {"SASRec": Side("sasrec", control=True)}
    for k in depths:
        out[f"pretrained {k}"] = Side("e4srec", k, control=True)
        out[f"random {k}"] = Side("e4srec", k, backbone="random", control=True)
    for k in sorted({depths[0], depths[-1]}):
        out[f"trainable {k}"] = Side("e4srec", k, train_item_table=True, control=True)
    out[f"prefixes {book.profile.small}"] = Side("e4srec", book.profile.small, targets="prefixes", control=True)
    return out


def control_claims(book: Book) -> tuple:
    """The depth controls (09) as claims: pretraining, depth, training rows, item table (Claim), order
    (OrderClaim). All sides are control runs (fp32 scores, one retrained item table): they are
    compared with each other only."""
    from .. import studies

    depths = studies.control_depths(book.profile)
    s = control_sides(book)
    small, deep = depths[0], depths[-1]
    out = [Claim("control: pretraining", f"language pretraining helps: pretrained E4SRec_{k} beats the same "
                 "stack with random weights", s[f"pretrained {k}"], s[f"random {k}"],
                 "the paper's premise: the LLM's knowledge is what the rows use") for k in depths]
    if deep > small:
        out += [Claim("control: depth", f"depth helps{what}: E4SRec_{deep} beats E4SRec_{small}", s[f"{w} {deep}"],
                      s[f"{w} {small}"], "E4SRec* above E4SRec_4* in the paper's table")
                for w, what in (("pretrained", ""), ("random", " a random-weight stack"))]
    p = book.profile.small
    out.append(Claim("control: training rows", f"every prefix a training row helps E4SRec_{p} (E4SRec's recipe "
                     "against one row a user)", s[f"prefixes {p}"], s[f"pretrained {p}"],
                     "E4SRec trains on every prefix; the SLMRec code on one row a user"))
    out += [Claim("control: item table", f"the frozen item table is a ceiling: E4SRec_{k} with the table "
                  "trainable beats it frozen", s[f"trainable {k}"], s[f"pretrained {k}"],
                  "the paper keeps the table frozen") for k in sorted({small, deep})]
    out += [OrderClaim("control: order", f"{name if name == 'SASRec' else 'E4SRec_' + name.split()[1]}"
                       f"{' (random weights)' if name.startswith('random') else ''} uses the order of a history: "
                       "plain histories beat shuffled ones", side)
            for name, side in s.items() if name == "SASRec" or name.startswith(("pretrained", "random"))]
    return tuple(out)


EFFICIENCY_CLAIMS = (
    EfficiencyClaim("RQ2", "the student infers faster than E4SRec* (paper: 8.0x)", "inference", 8.0),
    EfficiencyClaim("RQ2", "the student trains faster than E4SRec* (paper: 6.6x)", "train", 6.6),
    EfficiencyClaim("RQ2", "the student uses a small share of E4SRec*'s parameters (paper: 13%)", "params", 0.13),
)


# ------------------------------------------------------------------------------------------ scores
def seed_scores(rows: pd.DataFrame, model: str, reference: str, protocol: str, metrics=MAIN_METRICS,
                ref_protocol: str | None = None) -> np.ndarray:
    """Per seed of `model` (a group): mean over metrics of the relative change (percent) against
    `reference`'s mean over seeds (under `ref_protocol`, default the same protocol). A metric where the
    reference scores 0 is left out."""
    test = rows[(rows.stage == "test") & rows.metric.isin(metrics)]
    r = test[test.protocol == protocol]
    ref = test[(test.protocol == (ref_protocol or protocol)) & (test.group == reference)].groupby("metric")["value"].mean()
    mine = r[r.group == model]
    if mine.empty or ref.empty:
        raise BookError(f"no test rows of {model if mine.empty else reference!r} under {protocol}")
    ref = ref[ref > 0]
    if ref.empty:
        raise BookError(f"{reference!r} scores 0 on every metric: no relative change can be taken against it")
    mine = mine[mine.metric.isin(ref.index)]
    rel = 100 * (mine["value"] / mine["metric"].map(ref) - 1)
    return rel.groupby(mine["seed"]).mean().to_numpy()


def _ranks_of(config_hash: str, book: Book) -> dict | None:
    """The per-user ranks a run kept (`experiment.load_ranks_by_hash`), None if it predates them."""
    from ..experiment import load_ranks_by_hash

    return load_ranks_by_hash(config_hash, book.name)


def _per_user(rows: pd.DataFrame, group: str, protocol: str, book: Book):
    """seeds x users of PAIRED_METRIC from stored ranks, and the users' indices; None if a run lacks ranks."""
    hashes = rows[rows.group == group].sort_values("seed").drop_duplicates("seed").config_hash
    out, users = [], None
    for h in hashes:
        saved = _ranks_of(h, book)
        if saved is None or f"{protocol}/test" not in saved:
            return None
        out.append(stats.per_user_metric(saved[f"{protocol}/test"], PAIRED_METRIC))
        mine = saved.get("users")
        if users is not None and (mine is None) != (users is None or users is False):
            return None
        users = mine if mine is not None else False
    return np.vstack(out), users


def _paired(rows, a, b, protocol, book, protocol_b=None):
    pa, pb = _per_user(rows, a, protocol, book), _per_user(rows, b, protocol_b or protocol, book)
    if pa is None or pb is None:
        return None, NO_RANKS
    (va, ua), (vb, ub) = pa, pb
    same_users = (ua is False and ub is False) or (ua is not False and ub is not False and np.array_equal(ua, ub))
    if not same_users or va.shape[1] != vb.shape[1]:
        return None, "stored ranks of different users: seed-level test"
    boot = stats.paired_bootstrap(va, vb, n_boot=N_BOOT, alternative="greater")
    other = stats.paired_bootstrap(va, vb, n_boot=N_BOOT, alternative="less")
    wil = stats.paired_wilcoxon(va, vb)
    return (boot, other), f"{boot}; {wil}"


def _judge_one(rows, a, b, protocol, book, protocol_b: str | None = None) -> dict:
    """A over B under `protocol` (B under `protocol_b` where given: the order control compares one model
    on plain and on shuffled histories)."""
    pb = protocol_b or protocol
    a_scores = seed_scores(rows, a, b, protocol, ref_protocol=pb)
    b_scores = seed_scores(rows, b, b, pb)
    w = stats.welch(a_scores, b_scores, "greater", ALPHA)
    w_less = stats.welch(a_scores, b_scores, "less", ALPHA)
    from .runs import per_seed

    ref = per_seed(rows, b, pb, PAIRED_METRIC)
    try:
        rel = str(stats.relative_difference_ci(per_seed(rows, a, protocol, PAIRED_METRIC), ref, ALPHA)) if len(ref) else ""
    except stats.StatsError as exc:  # e.g. a reference that scored 0 (P5 on the cpu profile's 10 users)
        rel = f"no relative {PAIRED_METRIC} change: {exc}"
    paired, paired_text = _paired(rows, a, b, protocol, book, pb)
    if paired is not None:
        boot, other = paired
        test = f"paired bootstrap over seeds x users ({PAIRED_METRIC})"
        effect, lo, hi, p, p_other = boot.percent, boot.percent_ci_low, boot.percent_ci_high, boot.p, other.p
    else:
        test = SEED_TEST
        effect, lo, hi, p, p_other = w.diff, w.ci_low, w.ci_high, w.p, w_less.p
    return dict(protocol=protocol, test=test, effect_pct=effect, ci_low=lo, ci_high=hi, p=p, p_other=p_other,
                ndcg10=rel, paired=paired_text,
                seeds=f"{len(a_scores)} vs {len(b_scores)}", detail=str(w))


def _paper_evidence(claim: Claim, rows, a, b, book: Book) -> str:
    if claim.paper_says:
        return claim.paper_says
    info = groups(rows)
    better, worse = paper_row(info.loc[a], book), paper_row(info.loc[b], book)
    rung = ""
    if better and not worse and info.loc[b, "kind"] == "sasrec" and not info.loc[b, "control"]:
        worse, rung = "SASRec", f" (the paper's one SASRec; ours here: the {rung_of(info.loc[b])} rung)"
    if not better or not worse:
        return ""
    avg = average_improvement(paper_long(), worse, model_col="method")
    return f"{better} vs {worse}: {avg[better]:+.2f}% on average{rung}"


def _not_run(c, missing) -> dict:
    return dict(rq=c.rq, claim=c.text, ours="", paper=c.paper_says, protocol="", test="", effect_pct=np.nan,
                ci_low=np.nan, ci_high=np.nan, p=np.nan, p_other=np.nan, ndcg10="", paired="", seeds="",
                detail=f"a side has no finished run here ({len(missing)} runs of the profile not run: listed in "
                       "the report)", verdict=NOT_RUN)


def _raw(rows: pd.DataFrame, book: Book, claims, missing) -> list[dict]:
    """One dict a (claim, pair of models, protocol), before Holm's adjustment."""
    info = groups(rows)
    out = []
    for c in claims:
        if isinstance(c, OrderClaim):
            found = c.side.find(rows, book)
            if not found and missing:
                out.append(_not_run(c, missing))
            for a in found:
                for protocol in protocols(rows[rows.group == a]):
                    twin = shuffled_of(protocol, rows[rows.group == a])
                    if twin is not None:
                        out.append(dict(rq=c.rq, claim=c.text, ours=f"{info.name[a]}: plain vs shuffled",
                                        paper=c.paper_says, **_judge_one(rows, a, a, protocol, book, twin)))
            continue
        better, worse = c.better.find(rows, book), c.worse.find(rows, book)
        if (not better or not worse) and missing:
            out.append(_not_run(c, missing))
        for a in better:
            for b in worse:
                if a == b:
                    continue
                paper = _paper_evidence(c, rows, a, b, book)
                for protocol in protocols(rows[rows.group.isin([a, b])]):
                    if not {a, b} <= set(rows[rows.protocol == protocol].group):
                        continue
                    out.append(dict(rq=c.rq, claim=c.text, ours=f"{info.name[a]} vs {info.name[b]}", paper=paper,
                                    **_judge_one(rows, a, b, protocol, book)))
    return out


def _finish(out: list[dict]) -> pd.DataFrame:
    """Holm's adjustment over every tested row, then the verdicts (a row "not run" keeps its verdict)."""
    frame = pd.DataFrame(out, columns=COLUMNS + ["p_other"])
    if frame.empty:
        return frame.drop(columns="p_other")
    frame["p_holm"] = stats.holm(frame.p.to_numpy(dtype=float))
    p_other = stats.holm(frame.p_other.to_numpy(dtype=float))
    frame["verdict"] = [v if v == NOT_RUN else stats.decide(p, (lo, hi), ALPHA, po) for v, p, lo, hi, po in
                        zip(frame.verdict, frame.p_holm, frame.ci_low, frame.ci_high, p_other)]
    frame["protocol"] = frame.protocol.map(lambda p: protocol_kind(p) if p else "")
    return frame.drop(columns="p_other")


def judge_claims(rows: pd.DataFrame, book: Book, rq: str | None = None, claims=CLAIMS) -> pd.DataFrame:
    """A verdict for every claim of `claims` (Claim or OrderClaim; default the paper's) whose two sides
    are in `rows` (optionally of one RQ), one row a (claim, pair of models, protocol); a side naming
    several models (a ladder of SASRec trainings) gives one row each. A claim a side of which is
    missing while `rows.attrs["missing"]` lists runs this machine lacks gets one row "not run" (for
    the claims of the paper's studies only when `claims` is not the default). Holm's adjustment runs
    over all tested rows of this call."""
    missing = rows.attrs.get("missing") or []
    rows = normalized(rows) if "group" not in rows.columns else rows
    chosen = [c for c in claims if not rq or c.rq == rq]
    return _finish(_raw(rows, book, chosen, [] if claims is CLAIMS else missing))


def all_claims(book: Book) -> tuple:
    """The paper's claims, the ladder's and the depth controls', each once."""
    out = []
    for c in (*CLAIMS, *LADDER_CLAIMS, *control_claims(book)):
        if c not in out:
            out.append(c)
    return tuple(out)


def side_by_side(claims: pd.DataFrame) -> pd.DataFrame:
    """One line a (claim, pair of models): effect [95% CI], Holm-adjusted p and verdict per protocol."""
    if claims.empty:
        return claims
    acc = claims[(claims.protocol != "") | (claims.verdict == NOT_RUN)].copy()
    tested = [p for p in acc.protocol if p]
    acc.loc[acc.verdict == NOT_RUN, "protocol"] = tested[0] if tested else "sampled"  # shown once, in the first
    acc["effect"] = ["" if e != e else f"{e:+.1f}%" + ("" if lo != lo else f" [{lo:+.1f}, {hi:+.1f}]")
                     for e, lo, hi in zip(acc.effect_pct, acc.ci_low, acc.ci_high)]
    acc["adj. p"] = acc.p_holm.map(lambda p: "" if p != p else f"{p:.3g}")
    keys = ["rq", "claim", "ours", "paper"]
    wide = acc.pivot_table(index=keys, columns="protocol", values=["effect", "adj. p", "verdict"],
                           aggfunc="first", sort=False)
    order = list(dict.fromkeys(acc.protocol))
    wide = wide.reindex(columns=[(v, p) for p in order for v in ("effect", "adj. p", "verdict")])
    wide.columns = [f"{p}: {v}" for v, p in wide.columns]
    tests = acc.groupby(keys, sort=False).test.first()
    wide["test"] = tests
    return wide.reset_index()


def protocol_agreement(rows: pd.DataFrame, metric: str = PAIRED_METRIC) -> pd.DataFrame:
    """Per dataset: Kendall's tau-b between the models' orderings (mean test `metric` over seeds) under
    the sampled protocol and under full ranking, over the models scored under both."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    out = []
    for dataset, part in rows[(rows.stage == "test") & (rows.metric == metric)].groupby("dataset", sort=False):
        names_ = [p for p in protocols(part)]
        sampled = [p for p in names_ if p.startswith("sampled")]
        if not sampled or "full" not in names_:
            out.append(dict(dataset=dataset, metric=metric, models=0, tau=np.nan, p=np.nan,
                            note="no full-ranking rows: agreement not measured"))
            continue
        means = part.groupby(["protocol", "group"]).value.mean()
        both = sorted(set(means[sampled[0]].index) & set(means["full"].index))
        res = stats.kendall_tau({g: means[sampled[0]][g] for g in both}, {g: means["full"][g] for g in both})
        out.append(dict(dataset=dataset, metric=metric, models=res.n, tau=res.tau, p=res.p,
                        note=res.reason or f"{protocol_kind(sampled[0])} vs full ranking"))
    return pd.DataFrame(out, columns=["dataset", "metric", "models", "tau", "p", "note"])


# ------------------------------------------------------------------------------------------ efficiency
def _expected(claim: EfficiencyClaim, book: Book) -> float:
    """The paper's figure at our depths (the paper's student has PAPER_SMALL of PAPER_DEPTH layers)."""
    prof = book.profile
    scale = (prof.depth / prof.small) / (PAPER_DEPTH / PAPER_SMALL)
    return claim.paper_value / scale if claim.measure == "params" else claim.paper_value * scale


def _timing_speedups(timed: pd.DataFrame, book: Book) -> dict[str, float]:
    """The student's speed-ups over the deepest E4SRec in the timing benchmark (picked by its columns:
    the student is the row with a teacher depth)."""
    from ..timing import summary

    s = summary(timed)
    student_rows = timed[timed.teacher_layers.notna() & (timed.layers == book.profile.small)]
    if student_rows.empty:
        return {}
    row = s[s.model == student_rows.model.iloc[0]].iloc[0]
    return {"inference": float(row.inference_speedup), "train": float(row.train_speedup)}


def efficiency_measures(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> dict[str, float]:
    """Our student-vs-E4SRec* ratios: inference and training speed-ups and the inference-parameter share.

    The speed-ups come from the timing benchmark where given. Without it they come from the runs' own
    clocks, except where those are no measure: a profile that trains on a GPU (its runs may have shared
    the device with other runs) or rows that record sharing (`runs_per_device` above 1)."""
    from .runs import one
    from .tables import efficiency_table

    rows = normalized(rows) if "group" not in rows.columns else rows
    deep, student = one(DEEP, rows, book), one(STUDENT, rows, book)
    shared = "runs_per_device" in rows.columns and (rows.runs_per_device.fillna(1) > 1).any()
    out = {}
    if deep is None or student is None:
        return out
    eff = efficiency_table(rows[rows.group.isin([deep, student])], book).set_index("group")
    if timing is not None and not timing.empty:
        out.update(_timing_speedups(timing, book))
    elif not book.profile.gpu_required and not shared:
        out["inference"] = eff.loc[deep, "eval_ms_per_user"] / eff.loc[student, "eval_ms_per_user"]
        out["train"] = eff.loc[deep, "train_ms_per_step"] / eff.loc[student, "train_ms_per_step"]
    out["params"] = eff.loc[student, "inference_params"] / eff.loc[deep, "inference_params"]
    return out


def judge_efficiency(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """A verdict for each RQ2 claim: ours against the paper's figure scaled to our depths."""
    ours = efficiency_measures(rows, book, timing)
    out = []
    for c in EFFICIENCY_CLAIMS:
        if c.measure not in ours:
            if c.measure != "params" and "params" in ours:  # the runs exist, the speed was not measured
                out.append(dict(rq=c.rq, claim=c.text, ours="not timed on this dataset (no timing benchmark)",
                                paper=f"{c.paper_value:g}x", verdict=NOT_MEASURED, test="",
                                detail="python -m slmrec_lib.timing measures it"))
            continue
        value, expected = ours[c.measure], _expected(c, book)
        if c.measure == "params":
            ok = value <= expected * (1 + EFFICIENCY_TOLERANCE)
            shown = f"{100 * value:.1f}% (expected at our depths: {100 * expected:.1f}%)"
        else:
            ok = value >= expected * (1 - EFFICIENCY_TOLERANCE)
            shown = f"{value:.2f}x (expected at our depths: {expected:.2f}x)"
        paper_shown = f"{c.paper_value:.0%}" if c.measure == "params" else f"{c.paper_value:g}x"
        depths = f"depths {book.profile.depth} -> {book.profile.small}"
        out.append(dict(rq=c.rq, claim=c.text, ours=shown, paper=paper_shown, verdict=HOLDS if ok else FAILS,
                        test=f"ratio within {EFFICIENCY_TOLERANCE:.0%} of the paper's, scaled to our depths",
                        detail=f"tolerance {EFFICIENCY_TOLERANCE:.0%}; {depths}"))
    return pd.DataFrame(out, columns=["rq", "claim", "ours", "paper", "verdict", "test", "detail"])


def judge_all(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every accuracy claim (the paper's, the ladder's and the controls', under each protocol), every
    efficiency claim the rows can judge, and the descriptive layer-redundancy line of the controls."""
    from .ladder import layer_claims

    acc = judge_claims(rows, book, claims=all_claims(book))
    eff = judge_efficiency(rows, book, timing).assign(protocol="")
    parts = [f for f in (acc, eff, layer_claims(rows, book)) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else eff


def findings(claims: pd.DataFrame) -> str:
    """The verdicts as sentences, for a notebook's closing cell."""
    if claims.empty:
        return "No claim of the paper can be judged from these rows (a side of each comparison is missing)."
    lines = []
    for r in claims.itertuples():
        protocol = getattr(r, "protocol", "")  # efficiency claims have none
        protocol = protocol if isinstance(protocol, str) else ""
        where = f" under {protocol}" if protocol else ""
        if r.verdict == NOT_RUN:
            lines.append(f"- [{r.rq}] {r.claim}: NOT RUN ({r.detail})")
            continue
        if protocol:
            ci = "" if r.ci_low != r.ci_low else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
            p = "" if r.p_holm != r.p_holm else f", Holm-adjusted p {r.p_holm:.3g}"
            ours = f"{r.ours}: {r.effect_pct:+.1f}%{ci} ({r.test}{p})"
        else:
            ours = r.ours
        lines.append(f"- [{r.rq}] {r.claim}{where}: {r.verdict.upper()} ({ours}; paper: {r.paper or 'n/a'})")
    return "\n".join(lines)


__all__ = ["HOLDS", "FAILS", "INCONCLUSIVE", "NOT_MEASURED", "NOT_RUN", "CLAIMS", "LADDER_CLAIMS", "OrderClaim",
           "control_claims", "control_sides", "all_claims", "EFFICIENCY_CLAIMS", "Claim",
           "EfficiencyClaim", "judge_claims", "judge_efficiency", "judge_all", "side_by_side", "protocol_agreement",
           "findings", "seed_scores", "efficiency_measures", "EFFICIENCY_TOLERANCE"]
