"""The book's figures (seaborn): each takes tables from `book`, titles itself with `Book.caption`
(profile, dataset, backbone) and is saved by `save` under figures/<profile>/."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import book as bk


def setup() -> None:
    sns.set_theme(style="whitegrid", context="notebook")


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    print(f"saved {path}")
    return path


def length_hist(lengths: pd.DataFrame, book: bk.Book):
    """Histogram of sequence lengths (users), one colour a dataset."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.histplot(data=lengths, x="length", hue="dataset", discrete=lengths.length.max() <= 60, stat="percent",
                 common_norm=False, element="step", ax=ax)
    ax.set(xlabel="items a user (whole sequence)", ylabel="% of users")
    ax.set_title(book.caption("Sequence lengths"), fontsize=10)
    return fig


def layer_scan(table: pd.DataFrame, book: bk.Book):
    """One panel a metric: ours over depth, SASRec as a line, the paper's Cloth scan for reference."""
    fig, axes = plt.subplots(1, len(bk.SCAN_METRICS), figsize=(13, 4), layout="constrained")
    scan = bk.paper("layer_scan_cloth")
    ours = set(table.index)
    # the paper's depths as ticks too, except one within 10% of ours (30 beside 32 would overprint)
    ticks = sorted(ours | {k for k in scan.layers if all(abs(k - o) > 0.1 * k for o in ours)})
    for ax, m in zip(axes, bk.SCAN_METRICS):
        ax.plot(table.index, table[m], "o-", label=f"E4SRec_k (ours, {book.dataset})")
        ax.axhline(table[f"SASRec {m}"].iloc[0], ls="--", color="C1", label="SASRec (ours)")
        ax.plot(scan.layers, scan[m], "s:", color="grey", alpha=0.7, label="paper, Cloth, Llama-2-7B (read by eye)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(k) for k in ticks], fontsize=8)
        ax.set(xlabel="decoder layers kept (k)", ylabel=m, title=m)
    axes[0].legend(fontsize=7)
    fig.suptitle(book.caption("E4SRec_k: accuracy against depth (test, sampled protocol)"), fontsize=10)
    return fig


def metric_bars(rows: pd.DataFrame, book: bk.Book, what: str, metrics=bk.SCAN_METRICS, ax=None):
    """Mean (bar) and standard deviation over seeds (whisker) of each model, in percent."""
    r = bk.select(rows, metrics).assign(value=lambda d: 100 * d.value)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(7, 0.7 * r.model.nunique() * len(metrics) / 2), 4))
    sns.barplot(data=r, x="metric", y="value", hue="model", order=list(metrics), hue_order=bk.order(r),
                errorbar="sd", ax=ax)
    ax.set(xlabel="", ylabel="% (test, sampled protocol)")
    ax.legend(fontsize=7, ncols=2)
    if own:
        ax.set_title(book.caption(what), fontsize=10)
        return fig
    return ax


def main_table(rows: pd.DataFrame, table: pd.DataFrame, book: bk.Book):
    """Left: our metrics per model; right: the average improvement over E4SRec*, ours and the paper's."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5), gridspec_kw=dict(width_ratios=[1.7, 1]),
                                      layout="constrained")
    metric_bars(rows, book, "", ax=left)
    avg = pd.DataFrame({"ours": table[("avg improvement %", "")],
                        "paper (Cloth + Movie)": table[("paper avg improvement %", "")]})
    avg = avg.rename_axis("model").reset_index().melt(id_vars="model", var_name="source", value_name="pct")
    sns.barplot(data=avg, y="model", x="pct", hue="source", ax=right)
    right.axvline(0, color="black", lw=0.8)
    right.set(xlabel=f"average improvement over {book.label('E4SRec_{depth}')} (ours) / E4SRec* (paper), %", ylabel="")
    right.tick_params(axis="y", labelsize=8)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    fig.suptitle(book.caption("Main table (RQ1): ours, mean +- std over seeds, and the paper's average improvement"),
                 fontsize=10)
    return fig


def efficiency(timing: pd.DataFrame, book: bk.Book):
    """Median (bar) and range (whisker) over repeats of inference ms per user and training ms per step."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    for ax, measure in zip(axes, ("inference_ms_per_user", "train_ms_per_step")):
        part = timing[timing.measure == measure]
        sns.barplot(data=part, x="model", y="ms", estimator=np.median, errorbar=("pi", 100), ax=ax, color="C0")
        ax.set(xlabel="", ylabel=measure.replace("_", " "), yscale="log")
        ax.tick_params(axis="x", rotation=20)
    device = timing.device.iloc[0] if len(timing) else "?"
    fig.suptitle(book.caption(f"Timing benchmark (RQ2) on {device}; student step includes its teacher's forward"),
                 fontsize=10)
    return fig


def report(comparison: pd.DataFrame, book: bk.Book):
    """Our average improvement over E4SRec* against the paper's, one point a row that maps."""
    ours = comparison[("avg improvement %", "")]
    theirs = comparison[("paper avg improvement %", "")]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.scatter(theirs, ours)
    for label, x, y in zip(comparison.index, theirs, ours):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo = np.nanmin([theirs.min(), ours.min(), 0]) - 2
    hi = np.nanmax([theirs.max(), ours.max(), 0]) + 2
    ax.plot([lo, hi], [lo, hi], ls=":", color="grey", label="ours = paper")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(0, color="black", lw=0.6)
    ax.set(xlabel="paper: average improvement over E4SRec* (%)", ylabel="ours: over our deepest E4SRec (%)")
    ax.legend(fontsize=8)
    ax.set_title(book.caption("Ours against the paper, row by row"), fontsize=10)
    return fig
