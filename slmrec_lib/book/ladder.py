"""The baseline ladder (notebook 08) and the depth controls (09): their runs, tables, the BCE rung's
calibration against the published number, the layers' angular distances and the closing texts, all
computed from the result rows.

Ladder: the SASRec rungs of `studies.baselines` on every seed, and E4SRec at the ladder's depths
(the first and last of `studies.control_depths`) reading the main item table (every seed of the main
table) and reading the BCE rung's table (the first seed). Controls: the runs of
`studies.depth_controls`, compared with each other only (fp32 scores, the profile's item table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paths, studies
from .claims import control_sides
from .context import Book
from .paper import MAIN_METRICS
from .runs import (RUNG_NAMES, Side, groups, is_shuffled, item_table_run, normalized, plain_of, protocol_kind,
                   protocols, rows_of, rung_of, shuffled_of)
from .tables import mean_sd_text, mean_std

# The published full-ranking numbers of the BCE rung's setting (fractions), by dataset.
# Source: the S3-Rec paper's SASRec row on Beauty (Zhou et al., CIKM 2020, "S3-Rec"; the same file and
# leave-one-out split), as quoted in benchmarks/README-baselines.md.
PUBLISHED_BCE = {"beauty": {"NDCG@10": 0.0318, "HR@10": 0.0605}}
PUBLISHED_BCE_SOURCE = "S3-Rec (Zhou et al., CIKM 2020), SASRec on Beauty, full ranking"
CALIBRATION_TOLERANCE = 0.10  # the BCE rung must come within 10% of the published number
LADDER_METRICS = ("HR@10", "NDCG@10", "MRR")
LLM_READS = {"main": "main item table (CE SASRec)", "bce": "BCE rung's item table"}


# ------------------------------------------------------------------------------------------ runs
def ladder_depths(book: Book) -> list[int]:
    """The E4SRec depths of the ladder: the first and the last of the control depths."""
    depths = studies.control_depths(book.profile)
    return sorted({depths[0], depths[-1]})


def ladder_configs(book: Book) -> list:
    """The ladder's runs, plus every seed of the main table's E4SRec at the ladder's depths (the study
    itself holds the first seed), so the LLM side of "the LLM beats SASRec" has the rungs' seeds."""
    prof, ds = book.profile, book.dataset
    extra = [studies.e4srec(prof, ds, k, seed) for k in ladder_depths(book) for seed in prof.seeds]
    return studies.baselines(prof, ds) + extra


def ladder_rows(book: Book) -> pd.DataFrame:
    return rows_of(ladder_configs(book), book)


def control_rows(book: Book) -> pd.DataFrame:
    return rows_of(studies.depth_controls(book.profile, book.dataset), book)


def missing_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs of the rows' studies that have no saved result (`rows.attrs["missing"]`)."""
    missing = rows.attrs.get("missing") or []
    if not missing:
        return pd.DataFrame(columns=["label", "dataset", "seeds"])
    gone = pd.DataFrame(missing).groupby(["label", "dataset"], sort=False).seed
    return gone.agg(lambda s: ", ".join(map(str, sorted(s)))).rename("seeds").reset_index()


# ------------------------------------------------------------------------------------------ ladder
def ladder_models(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """One row a model of the ladder: its display name, what it is ("SASRec rung" or "LLM"), the rung
    (SASRec) or the item table it reads (LLM), depth and seeds; picked by columns."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    g = groups(rows)
    out = []
    for key, r in g.iterrows():
        if r.kind == "sasrec" and not r.role and not r.control:
            out.append(dict(group=key, model=r["name"], part="SASRec rung", rung=rung_of(r),
                            what=RUNG_NAMES[rung_of(r)], layers=np.nan, seeds=r.seeds))
        elif r.kind == "e4srec" and not r.control:
            table = next((t for t in ("main", *studies.RUNGS)
                          if item_table_run(book, r.dataset, t) == r.item_run), None)
            if table is not None:
                out.append(dict(group=key, model=r["name"], part="LLM", rung=table,
                                what=f"reads the {LLM_READS.get(table, table + ' table')}", layers=r.layers,
                                seeds=r.seeds))
    return pd.DataFrame(out, columns=["group", "model", "part", "rung", "what", "layers", "seeds"])


def ladder_table(rows: pd.DataFrame, book: Book, metrics=LADDER_METRICS) -> pd.DataFrame:
    """Percent, test stage, mean ± std over seeds of each ladder model under every (plain) protocol;
    columns "<protocol kind> <metric>", plus what the model is, seeds and test users."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    models = ladder_models(rows, book)
    out = models.set_index("group")[["model", "part", "what"]]
    for p in protocols(rows):
        ms = mean_std(rows, metrics, protocol=p)
        ms.index = ms[("group", "")]
        for m in metrics:
            out[f"{protocol_kind(p)} {m}"] = [mean_sd_text(ms["mean"][m].get(k, np.nan), ms["std"][m].get(k, np.nan))
                                              for k in out.index]
        out["seeds"] = ms[("seeds", "")].reindex(out.index).to_numpy()
        out["users"] = ms[("users", "")].reindex(out.index).to_numpy()
    return out.reset_index(drop=True).set_index("model")


def _means(rows: pd.DataFrame, protocol: str, metrics=MAIN_METRICS) -> pd.DataFrame:
    """group x metric: the mean over seeds of the test values under `protocol`."""
    r = rows[(rows.stage == "test") & (rows.protocol == protocol) & rows.metric.isin(metrics)]
    return r.groupby(["group", "metric"]).value.mean().unstack("metric")


def ladder_margins(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """Every LLM of the ladder against every SASRec rung, per protocol: the relative change (%) of
    the seed means of NDCG@10 and the mean over the six main metrics of the relative change (the
    paper's average improvement). A margin above 0: the LLM scores higher."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    models = ladder_models(rows, book)
    llms, rungs = models[models.part == "LLM"], models[models.part == "SASRec rung"]
    out = []
    for p in protocols(rows):
        means = _means(rows, p)
        for llm in llms.itertuples():
            for rung in rungs.itertuples():
                if llm.group not in means.index or rung.group not in means.index:
                    continue
                a, b = means.loc[llm.group], means.loc[rung.group]
                rel = 100 * (a / b.where(b > 0) - 1)
                out.append(dict(protocol=protocol_kind(p), llm=llm.model, reads=llm.rung, rung_model=rung.model,
                                rung=rung.rung, ndcg10_margin_pct=float(rel.get("NDCG@10", np.nan)),
                                avg_margin_pct=float(rel.mean()), llm_seeds=int(llm.seeds), rung_seeds=int(rung.seeds)))
    return pd.DataFrame(out, columns=["protocol", "llm", "reads", "rung_model", "rung", "ndcg10_margin_pct",
                                      "avg_margin_pct", "llm_seeds", "rung_seeds"])


def calibration(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """The BCE rung under full ranking (mean ± std over seeds) beside the published number of the
    same setting, with the ratio and whether it lies within CALIBRATION_TOLERANCE; empty where the
    book holds no published number for the dataset or the rows have no full-ranking BCE rung."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    cols = ["metric", "ours", "ours_std", "seeds", "published", "ratio", "within", "source"]
    published = PUBLISHED_BCE.get(book.dataset)
    bce = Side("sasrec", rung="bce").find(rows, book)
    if not published or not bce or "full" not in set(rows.protocol):
        return pd.DataFrame(columns=cols)
    r = rows[(rows.group == bce[0]) & (rows.stage == "test") & (rows.protocol == "full")]
    out = []
    for metric, value in published.items():
        mine = r[r.metric == metric].value
        ratio = float(mine.mean() / value)
        out.append(dict(metric=metric, ours=float(mine.mean()), ours_std=float(mine.std()), seeds=len(mine),
                        published=value, ratio=ratio, within=abs(ratio - 1) <= CALIBRATION_TOLERANCE,
                        source=PUBLISHED_BCE_SOURCE))
    return pd.DataFrame(out, columns=cols)


def calibration_text(calib: pd.DataFrame, book: Book) -> str:
    if calib.empty:
        return (f"No published number of the BCE setting on {book.dataset} in the book (or no full-ranking rows): "
                "the BCE rung is not calibrated here.")
    parts = [f"{r.metric} {100 * r.ours:.2f}% (± {100 * r.ours_std:.2f}, {r.seeds} seeds) against {100 * r.published:.2f}%"
             f" published ({r.ratio:.2f} of it)" for r in calib.itertuples()]
    ok = bool(calib.within.all())
    verdict = (f"within {CALIBRATION_TOLERANCE:.0%} of the published number: the BCE rung is the literature's SASRec"
               if ok else f"not within {CALIBRATION_TOLERANCE:.0%} of the published number on every metric")
    return f"Calibration of the BCE rung (full ranking, test): {'; '.join(parts)}; {verdict} ({calib.source.iloc[0]})."


def _claim_line(claims: pd.DataFrame, text_start: str, protocol: str, ours: str | None = None) -> str:
    c = claims[claims.claim.str.startswith(text_start) & (claims.protocol == protocol)]
    if ours is not None:
        c = c[c.ours == ours]
    if c.empty:
        return ""
    r = c.iloc[0]
    ci = "" if r.ci_low != r.ci_low else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
    return f"{r.verdict} ({r.effect_pct:+.1f}%{ci})"


def ladder_findings(rows: pd.DataFrame, book: Book, claims: pd.DataFrame) -> str:
    """The closing text of 08, from the rows: the rungs, the LLM's margin over each, the item table's
    effect, the calibration and the verdicts."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    models = ladder_models(rows, book)
    if models.empty:
        return "No ladder run has a saved result on this machine."
    lines = []
    for p in protocols(rows):
        means = _means(rows, p, ("NDCG@10",))["NDCG@10"] * 100
        kind = protocol_kind(p)
        rung_text = ", ".join(f"{r.model} {means.get(r.group, np.nan):.2f}%" for r in
                              models[models.part == "SASRec rung"].itertuples())
        lines.append(f"- {kind}, NDCG@10 (mean over seeds): {rung_text}.")
        for llm in models[models.part == "LLM"].itertuples():
            margins = ladder_margins(rows, book)
            m = margins[(margins.protocol == kind) & (margins.llm == llm.model)]
            shown = "; ".join(f"{r.ndcg10_margin_pct:+.1f}% over {r.rung_model}" for r in m.itertuples())
            lines.append(f"  - {llm.model} ({llm.what}, {llm.seeds} seed(s)): {means.get(llm.group, np.nan):.2f}%; "
                         f"{shown}.")
        verdicts = [f"{ours}: {v}" for ours in claims[claims.claim.str.startswith("the LLM recommender beats SASRec")
                                                        & (claims.protocol == kind)].ours
                    if (v := _claim_line(claims, "the LLM recommender beats SASRec", kind, ours))]
        if verdicts:
            lines.append(f"  - the paper's claim \"the LLM recommender beats SASRec\" per rung: {'; '.join(verdicts)}.")
    lines.append(f"- {calibration_text(calibration(rows, book), book)}")
    gone = missing_table(rows)
    if len(gone):
        lines.append(f"- Not run on this machine ({len(gone)} models): {', '.join(gone.label)}; their claims are "
                     "'not run'.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ controls
def control_models(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """The models of the depth controls present in the rows: name (control_sides' key), group, display."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    g = groups(rows)
    out = []
    for name, side in control_sides(book).items():
        for key in side.find(rows, book):
            kind, k = (name.split() + [""])[:2]
            out.append(dict(control=name, setting=kind, layers=int(k) if k else np.nan, group=key, model=g.name[key]))
    return pd.DataFrame(out, columns=["control", "setting", "layers", "group", "model"])


def control_table(rows: pd.DataFrame, book: Book, metric: str = "NDCG@10") -> pd.DataFrame:
    """Percent, test: each control model's `metric` under every protocol (plain and shuffled histories)
    and the drop (%) from plain to shuffled (the order it uses), each the mean over seeds, with the std
    over seeds beside it ("... sd", NaN with one seed) and the number of seeds. A seed's drop is taken
    within the seed (the same run scored twice), then averaged."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    models = control_models(rows, book)
    out = models.set_index("group")[["model", "control", "setting", "layers"]]
    test = rows[(rows.stage == "test") & (rows.metric == metric)]
    per_seed = 100 * test.pivot_table(index=["group", "seed"], columns="protocol", values="value", aggfunc="mean")
    columns = {}
    for p in protocols(rows):
        if p in per_seed.columns:
            columns[f"{protocol_kind(p)} {metric}"] = per_seed[p]
        twin = shuffled_of(p, rows)
        if twin is not None and twin in per_seed.columns and p in per_seed.columns:
            columns[f"{protocol_kind(twin)} {metric}"] = per_seed[twin]
            columns[f"{protocol_kind(p)} order drop %"] = 100 * (1 - per_seed[twin] / per_seed[p])
    for name, values in columns.items():
        by = values.groupby(level="group")
        out[name] = by.mean().reindex(out.index).to_numpy()
        out[f"{name} sd"] = by.std().reindex(out.index).to_numpy()
    out["seeds"] = test.groupby("group").seed.nunique().reindex(out.index).fillna(0).astype(int).to_numpy()
    return out.reset_index(drop=True).set_index("model")


def spread_columns(table: pd.DataFrame) -> list[str]:
    """The value columns of a `control_table` that have a "<column> sd" beside them."""
    return [c for c in table.columns if f"{c} sd" in table.columns]


def layer_distances(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """The saved angular distances (`experiment.LAYER_DISTANCES`) of the pretrained and the random
    E4SRec at the deepest control depth, long: model, setting, layer, shift, angular_distance (the mean
    over the seeds whose runs saved one), users (test users of one run), seeds."""
    from ..experiment import LAYER_DISTANCES

    models = control_models(rows, book)
    deepest = models[models.setting.isin(["pretrained", "random"])].layers.max() if len(models) else np.nan
    frames = []
    for r in models[models.setting.isin(["pretrained", "random"]) & (models.layers == deepest)].itertuples():
        for h in rows[rows.group == r.group].config_hash.unique():
            path = paths.results_dir(book.name) / "runs" / str(h) / LAYER_DISTANCES
            if path.exists():
                frames.append(read_layer_distances(path).assign(model=r.model, setting=r.setting, run=str(h)))
    cols = ["model", "setting", "layer", "shift", "angular_distance", "users", "seeds"]
    if not frames:
        return pd.DataFrame(columns=cols)
    every = pd.concat(frames, ignore_index=True)
    out = every.groupby(["model", "setting", "layer", "shift"], sort=False).agg(
        angular_distance=("angular_distance", "mean"), users=("users", "first"), seeds=("run", "nunique"))
    return out.reset_index()[cols]


def read_layer_distances(path) -> pd.DataFrame:
    """One run's layer_angular_distance.csv, checked: columns layer, shift, angular_distance, users."""
    frame = pd.read_csv(path)
    need = {"layer", "shift", "angular_distance", "users"}
    if not need <= set(frame.columns):
        raise ValueError(f"{path}: columns {sorted(frame.columns)} lack {sorted(need - set(frame.columns))}; "
                         "it is not a layer_angular_distance.csv written by experiment (run the E4SRec again)")
    return frame


def distance_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """shift n (rows) x layer l (columns) of the angular distance between layers l and l + n (one model)."""
    return frame.pivot_table(index="shift", columns="layer", values="angular_distance", aggfunc="mean")


def redundancy(frame: pd.DataFrame, shift: int) -> pd.DataFrame:
    """Per model: the block of `shift` consecutive layers that changes the last-token state least (the
    smallest angular distance d(l, l + n), Gromov et al. 2024's pruning rule), and the largest; `seeds`:
    how many runs the distances average (1 for a single run's file)."""
    out = []
    for (model, setting), part in frame[frame["shift"] == shift].groupby(["model", "setting"], sort=False):
        lo, hi = part.loc[part.angular_distance.idxmin()], part.loc[part.angular_distance.idxmax()]
        out.append(dict(model=model, setting=setting, shift=shift, first_layer=int(lo.layer),
                        min_distance=float(lo.angular_distance), max_distance=float(hi.angular_distance),
                        users=int(lo.users), seeds=int(lo.get("seeds", 1))))
    return pd.DataFrame(out, columns=["model", "setting", "shift", "first_layer", "min_distance", "max_distance",
                                      "users", "seeds"])


def prune_shift(book: Book) -> int:
    """The block length n of the redundancy line: a quarter of the deepest control depth (at least 1)."""
    return max(1, studies.control_depths(book.profile)[-1] // 4)


def layer_claims(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """The layer-redundancy control as a report line: descriptive (the run saves means over users, no
    spread, so there is no test), one line a dataset."""
    frame = layer_distances(rows, book)
    cols = ["rq", "claim", "ours", "paper", "verdict", "test", "detail", "protocol"]
    n = prune_shift(book)
    red = redundancy(frame, n)
    if red.empty:
        return pd.DataFrame(columns=cols)
    ours = "; ".join(f"{r.model}: d(l, l+{n}) smallest {r.min_distance:.3f} at layers {r.first_layer}-"
                     f"{r.first_layer + n} (largest {r.max_distance:.3f})" for r in red.itertuples())
    return pd.DataFrame([dict(rq="control: layers", claim=f"some block of {n} layers barely changes the last-token "
                              "state (Gromov et al. 2024: such layers can be dropped)", ours=ours,
                              paper="the paper keeps the deeper layers' knowledge through distillation",
                              verdict="descriptive", test="angular distance arccos(cos)/pi, mean over test users",
                              detail=f"{int(red.users.iloc[0])} test users, mean over {int(red.seeds.min())} seed(s) of each "
                              "run's means over users; no spread over users saved: no test", protocol="")],
                        columns=cols)


def control_findings(rows: pd.DataFrame, book: Book, claims: pd.DataFrame) -> str:
    """The closing text of 09, from the rows: each control's numbers and verdicts."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    table = control_table(rows, book)
    if table.empty:
        return "No run of the depth controls has a saved result on this machine."
    lines = []
    first = protocols(rows)[0]
    kind = protocol_kind(first)
    col = f"{kind} NDCG@10"
    t = table.reset_index().set_index("control")
    for c in claims[claims.protocol == kind].itertuples():
        ci = "" if c.ci_low != c.ci_low else f" [{c.ci_low:+.1f}, {c.ci_high:+.1f}]"
        lines.append(f"- [{c.rq}] {c.claim} ({c.ours}): {c.verdict.upper()}, {c.effect_pct:+.1f}%{ci}.")
    for c in claims[claims.verdict == "not run"].itertuples():
        lines.append(f"- [{c.rq}] {c.claim}: NOT RUN on this machine.")
    drop = f"{kind} order drop %"
    if drop in table.columns:
        shown = ", ".join(f"{t.loc[name, 'model']} {t.loc[name, drop]:.1f}%" for name in t.index
                          if name == "SASRec" or name.startswith(("pretrained", "random")))
        lines.append(f"- Order ({kind} NDCG@10, drop from plain to shuffled histories): {shown}.")
    levels = ", ".join(f"{t.loc[name, 'model']} {mean_sd_text(t.loc[name, col], t.loc[name, col + ' sd'])}%"
                       for name in t.index)
    seeds = sorted(set(table.seeds))
    lines.append(f"- {col} of each control (mean ± std over {'/'.join(map(str, seeds))} seed(s)): {levels}.")
    red = redundancy(layer_distances(rows, book), prune_shift(book))
    for r in red.itertuples():
        lines.append(f"- {r.model}: the {r.shift} consecutive layers that change the last-token state least start "
                     f"at layer {r.first_layer} (angular distance {r.min_distance:.3f}; the most: {r.max_distance:.3f}; "
                     f"mean over {r.seeds} seed(s)).")
    return "\n".join(lines)


__all__ = ["ladder_configs", "ladder_rows", "control_rows", "ladder_models", "ladder_table", "ladder_margins",
           "calibration", "calibration_text", "ladder_findings", "control_models", "control_table",
           "layer_distances", "read_layer_distances", "distance_matrix", "redundancy", "layer_claims",
           "control_findings", "missing_table", "spread_columns", "PUBLISHED_BCE", "CALIBRATION_TOLERANCE", "is_shuffled",
           "plain_of", "ladder_markdown", "controls_markdown", "prune_shift"]


def ladder_markdown(rows: pd.DataFrame, book: Book) -> str:
    """The README's ladder tables: NDCG@10 and HR@10 (percent, mean ± std over seeds, seeds, users)
    under both protocols, and the LLM rows' NDCG@10 margin over each rung."""
    from .tables import markdown_table

    table = ladder_table(rows, book, metrics=("NDCG@10", "HR@10")).drop(columns=["part"])
    margins = ladder_margins(rows, book)
    wide = margins.pivot_table(index=["llm", "protocol"], columns="rung_model", values="ndcg10_margin_pct",
                               sort=False).reset_index()
    wide.columns = [c if c in ("llm", "protocol") else f"NDCG@10 margin over {c} (%)" for c in wide.columns]
    return "\n\n".join([markdown_table(table), markdown_table(wide, digits=1)])


def controls_markdown(rows: pd.DataFrame, book: Book) -> str:
    """The README's controls table: NDCG@10 (percent, mean ± std over seeds) plain and shuffled, the
    order drop, and the seeds."""
    from .tables import markdown_table

    table = control_table(rows, book)
    shown = pd.DataFrame({c: [mean_sd_text(m, sd) for m, sd in zip(table[c], table[f"{c} sd"])]
                          for c in spread_columns(table)}, index=table.index)
    shown["seeds"] = table.seeds
    return markdown_table(shown.reset_index(), digits=2)
