"""The book's tables: ours (percent, mean and std over seeds) beside the paper's, per model.

Conventions: the paper's tables are in percent; ours are fractions in the result rows and shown in
percent beside the paper's; tables use the test stage, the sampled protocol (1 positive + n negatives,
the paper's) unless told otherwise, and mean and standard deviation over seeds. The average
improvement is the paper's: the mean over metrics (and datasets) of the relative change against a
reference (E4SRec*: our deepest E4SRec), in percent. Models are picked by their tidy columns
(`runs.Side`); their labels are only shown.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .context import Book, BookError
from .paper import (MAIN_METRICS, PAPER_DEPTH, REFERENCE, SCAN_METRICS, average_improvement, paper,
                    paper_dataset_checks, paper_long, paper_row)
from .runs import DEEP, SASREC, Side, groups, normalized, one, select


def mean_std(rows: pd.DataFrame, metrics=MAIN_METRICS, scale: float = 100.0, **kw) -> pd.DataFrame:
    """Per model (display name, in the rows' order): mean and std over seeds of each metric (x scale).

    Columns are a MultiIndex (statistic, metric) with statistic in mean / std; plus ("seeds", ""),
    ("users", ""), the most test users a seed of the model was scored on (a profile may score a slow
    model, P5, on a seeded user subset), and ("group", ""), the model's key in the rows.
    """
    rows = normalized(rows) if "group" not in rows.columns else rows
    r = select(rows, metrics, **kw)
    g = r.groupby(["group", "metric"])["value"]
    stats = pd.DataFrame({"mean": g.mean() * scale, "std": g.std() * scale}).unstack("metric")
    stats = stats.reindex(columns=pd.MultiIndex.from_product([["mean", "std"], list(metrics)], names=[None, "metric"]))
    stats[("seeds", "")] = r.groupby("group")["seed"].nunique()
    stats[("users", "")] = r.groupby("group")["n_users"].max()
    info = groups(rows)
    keep = [k for k in info.index if k in stats.index]
    stats = stats.reindex(keep)
    stats[("group", "")] = keep
    stats.index = pd.Index(info.name[keep].to_list(), name="model")
    return stats


def main_table(rows: pd.DataFrame, book: Book, reference: Side = DEEP) -> pd.DataFrame:
    """Our mean and std (percent) of each metric, the average improvement over `reference` (a Side;
    the paper's is E4SRec*), the paper's row each model plays, and the paper's numbers and average
    improvement beside, taken against the paper's row of the same reference (E4SRec* for ours).
    `table.attrs["reference"]` says what each improvement is relative to."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    ours = mean_std(rows)
    ref_group = one(reference, rows, book, "the reference")
    if ref_group is None:
        raise BookError(f"the reference {reference} is not among the models: {list(ours.index)}")
    ref_name = groups(rows).name[ref_group]
    means = ours["mean"].stack().rename("value").reset_index()  # columns model, metric, value
    ours[("avg improvement %", "")] = average_improvement(means, ref_name)
    info = groups(rows)
    rows_paper = [paper_row(info.loc[g], book) for g in ours[("group", "")]]
    ref_paper = paper_row(info.loc[ref_group], book)
    paper_avg = average_improvement(paper_long(), ref_paper, "method") if ref_paper else pd.Series(dtype=float)
    ours[("paper row", "")] = rows_paper
    ours[("paper avg improvement %", "")] = [paper_avg.get(r, np.nan) if r else np.nan for r in rows_paper]
    table = pd.concat([ours, paper_values(rows_paper, list(ours.index))], axis=1).rename_axis("model")
    table.attrs["reference"] = f"{ref_name} (paper: {ref_paper or 'no row'})"
    table.attrs["reference_ours"], table.attrs["reference_paper"] = ref_name, ref_paper
    return table


def paper_values(rows_paper: list, labels: list[str], metrics=MAIN_METRICS) -> pd.DataFrame:
    """The paper's numbers of the rows our models play: index our label, columns (f"paper {dataset}", metric)."""
    frames = {}
    for ds, part in paper_long().groupby("dataset", sort=False):
        wide = part.pivot(index="method", columns="metric", values="value").reindex(columns=list(metrics))
        frames[f"paper {ds}"] = wide.reindex(rows_paper).set_axis(labels)
    return pd.concat(frames, axis=1)


def formatted(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A `main_table` for reading: ours as "mean ± std" per metric (just the mean with one seed), the
    paper's datasets as "a / b"."""
    papers = [f"paper {d}" for d in paper("main_table").dataset.unique()]
    fmt = lambda v: "" if v != v else f"{v:.{digits}f}"  # noqa: E731 (nan -> "")
    paper_head = "paper " + " / ".join(p[len("paper "):] for p in papers)
    cols = {}
    for m in table["mean"].columns:
        pairs = zip(table[("mean", m)], table[("std", m)])
        cols[(m, "ours")] = [fmt(a) + ("" if b != b else f" ± {fmt(b)}") for a, b in pairs]
        cells = zip(*(table[(p, m)] for p in papers))
        cols[(m, paper_head)] = ["" if all(v != v for v in vs) else " / ".join(map(fmt, vs)) for vs in cells]
    for col in ("seeds", "users", "avg improvement %", "paper row", "paper avg improvement %"):
        cols[(col, "")] = table[(col, "")].map(lambda v: fmt(v) if isinstance(v, float) else ("" if v is None else v))
    return pd.DataFrame(cols, index=table.index)


def comparison_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """Every model of ours that plays a row of the paper's main table, in the paper's order, with both
    sets of numbers (percent); improvements against E4SRec* (ours: our deepest E4SRec)."""
    t = main_table(rows, book)
    t = t[t[("paper row", "")].notna()]
    rank = {m: i for i, m in enumerate(paper("main_table").method.drop_duplicates())}
    out = t.iloc[np.argsort([rank[r] for r in t[("paper row", "")]], kind="stable")]
    out.attrs = dict(t.attrs)
    return out


def layer_scan_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """E4SRec_k over k (percent): ours, SASRec's, and the paper's Cloth scan at the matching depth."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    r = select(rows, SCAN_METRICS)
    e4 = r[Side("e4srec").mask(r, book)]
    ours = 100 * e4.groupby(["layers", "metric"])["value"].mean().unstack("metric")[list(SCAN_METRICS)]
    sas = one(SASREC, rows, book, "the layer scan's SASRec")
    sas_means = 100 * r[r.group == sas].groupby("metric")["value"].mean() if sas else pd.Series(dtype=float)
    for m in SCAN_METRICS:
        ours[f"SASRec {m}"] = sas_means.get(m, np.nan)
    ours.index = ours.index.astype(int)
    scan = paper("layer_scan_cloth").set_index("layers")
    # the same k where the paper scanned it; our deepest model plays the paper's 32 layers otherwise
    ours["paper layers"] = [k if k in scan.index else PAPER_DEPTH if k == book.profile.depth else np.nan
                            for k in ours.index]
    paper_rows = scan.reindex(ours["paper layers"])
    for m in SCAN_METRICS:
        ours[f"paper Cloth {m}"] = 100 * paper_rows[m].to_numpy()
    return ours


def efficiency_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """Per model, from the result rows (mean over seeds): training seconds and ms per step, evaluation ms
    per user, trainable and inference parameters; the paper's RQ2 row beside where one maps."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    r = rows.drop_duplicates("config_hash")
    r = r.assign(train_ms_per_step=1000 * r.train_seconds / r.steps.where(r.steps > 0),
                 eval_ms_per_user=1000 * r.eval_seconds_per_user)
    cols = ["train_seconds", "steps", "train_ms_per_step", "eval_ms_per_user", "train_params", "inference_params"]
    out = r.groupby("group", sort=False)[cols].mean()
    info = groups(rows)
    out["paper row"] = [paper_row(info.loc[g], book) for g in out.index]
    out["group"] = out.index
    out.index = pd.Index(info.name[out.index].to_list(), name="model")
    eff = paper("efficiency").set_index("method").add_prefix("paper ")
    return out.join(eff, on="paper row")


def impossible_blocks(book: Book) -> str:
    """The block counts b of the profile that cannot be used: b blocks need at least b student layers."""
    p = book.profile
    bad = [b for b in p.block_counts if b > p.small]
    if not bad:
        return f"every b in {list(p.block_counts)} fits the {p.small}-layer student."
    return (f"b = {', '.join(map(str, bad))} > {p.small} student layers is impossible: each block needs at least "
            "one student layer (the authors' block ends (N // b) * i would all be the embeddings); not run.")


def dataset_table(book: Book) -> pd.DataFrame:
    """The paper's dataset-table row of each of the profile's datasets (and of the full set where the
    profile keeps a user subset)."""
    from .. import studies
    from ..config import DataConfig
    from ..data import dataset_stats
    from ..experiment import get_data

    out = []
    for name in dict.fromkeys([book.dataset, *book.profile.datasets]):
        cfg = studies.data(book.profile, name)
        out.append(dict(dataset_stats(get_data(cfg)), used_by_profile="user subset" if cfg.max_users else "all users"))
        if cfg.max_users:
            out.append(dict(dataset_stats(get_data(DataConfig(name))), used_by_profile="full set (for reference)"))
    return pd.DataFrame(out)


def sequence_lengths(book: Book) -> pd.DataFrame:
    """One row a user: dataset and sequence length, for the profile's datasets as used."""
    from .. import studies
    from ..experiment import get_data

    parts = [pd.DataFrame({"dataset": n, "length": [len(s) for s in get_data(studies.data(book.profile, n)).sequences]})
             for n in dict.fromkeys([book.dataset, *book.profile.datasets])]
    return pd.concat(parts, ignore_index=True)


def mean_sd_text(mean: float, sd: float, digits: int = 2) -> str:
    """A "mean ± sd" cell: just the mean where there is no spread (one seed), empty where no mean."""
    return "" if mean != mean else f"{mean:.{digits}f}" + ("" if sd != sd else f" ± {sd:.{digits}f}")


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A pipe table of a frame (flattened column names), without extra dependencies."""
    f = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    cols = [" ".join(str(x) for x in c if str(x)) if isinstance(c, tuple) else str(c) for c in f.columns]

    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return "" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines)


def dataset_findings(book: Book) -> str:
    checks = paper_dataset_checks()
    bad = checks[~checks.consistent]
    lines = [f"- the paper's {r.dataset} row is inconsistent: {r.ratings_per_user:.2f} ratings a user, "
             f"{r.ratings_per_item:.1f} an item, density {r.density_pct_recomputed:.4f}% from its counts vs "
             f"{r.density_pct}% printed" for r in bad.itertuples()]
    ours = dataset_table(book).iloc[0]
    lines.append(f"- {ours['dataset']} as used here: {ours['users']} users, {ours['items']} items, "
                 f"{ours['interactions']} interactions, median length {ours['len_p50']:.0f}")
    return "\n".join(lines)


def scan_findings(table: pd.DataFrame, metric: str = "MRR") -> str:
    """What the layer scan shows: the best depth, the deepest against the shallowest and SASRec (percent)."""
    col = table[metric]
    best, deepest, shallowest = int(col.idxmax()), int(col.index.max()), int(col.index.min())
    sas = table[f"SASRec {metric}"].iloc[0]
    lines = [f"- {metric} is highest at {best} layer(s) ({col.max():.2f}%); {deepest} layers: {col[deepest]:.2f}%, "
             f"{shallowest} layer(s): {col[shallowest]:.2f}%; SASRec: {sas:.2f}%.",
             f"- the deepest E4SRec is {'above' if col[deepest] > sas else 'not above'} SASRec on {metric}; "
             "one seed, so differences of the size of a seed's spread are not findings."]
    return "\n".join(lines)


__all__ = ["mean_std", "main_table", "formatted", "comparison_table", "layer_scan_table", "efficiency_table",
           "impossible_blocks", "dataset_table", "sequence_lengths", "markdown_table", "dataset_findings",
           "scan_findings", "REFERENCE"]
