"""The book's figures (seaborn): each takes the rows or tables of the book, says in its title what is
behind it (profile, dataset, backbone, seeds, test users) and its units, and is saved by `save` under
figures/<profile>/. Percent everywhere; ratios as "x" with their value written beside each bar."""

from __future__ import annotations

import sys

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .context import Book
from .paper import PAPER_DEPTH, SCAN_METRICS, paper
from .runs import few_users, groups, normalized, protocol_kind, sampled_protocol, seeds_text, select, users_text


def setup() -> None:
    sns.set_theme(style="whitegrid", context="notebook")


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    if "ipykernel" in sys.modules:  # in a notebook: shown inline (and so in the executed notebook) first
        from IPython.display import display

        display(fig)
    plt.close(fig)
    print(f"saved {path}")
    return path


def _spread(rows: pd.DataFrame) -> str:
    """What the whiskers are: "mean ± std over 3 seeds", or "one seed: no spread"."""
    n = int(rows.groupby("group").seed.nunique().max()) if len(rows) else 0
    return f"bars: mean, whiskers: std over {n} seeds" if n > 1 else "one seed: bars are single runs, no spread"


def length_hist(lengths: pd.DataFrame, book: Book, quantile: float = 0.99):
    """Histogram of sequence lengths (users), one colour a dataset, the x-axis cut at the `quantile`
    (the long tail is stated in the title, not drawn)."""
    cut = float(lengths.length.quantile(quantile))
    shown = lengths[lengths.length <= cut]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.histplot(data=shown, x="length", hue="dataset", discrete=cut <= 60, stat="percent", common_norm=False,
                 element="step", ax=ax)
    ax.set(xlabel="items a user (whole sequence)", ylabel="% of users", xlim=(0, cut + 1))
    tail = f"x-axis to the {100 * quantile:.0f}th percentile ({cut:.0f} items); longest {lengths.length.max()}"
    ax.set_title(book.caption("Sequence lengths", users=f"{len(lengths)} users; {tail}"), fontsize=9)
    return fig


def layer_scan(table: pd.DataFrame, book: Book, rows: pd.DataFrame | None = None):
    """One panel a metric (percent): ours over depth, SASRec as a line, the paper's Cloth scan for reference."""
    fig, axes = plt.subplots(1, len(SCAN_METRICS), figsize=(13, 4), layout="constrained")
    scan = paper("layer_scan_cloth")
    ours = set(table.index)
    # the paper's depths as ticks too, except one within 10% of ours (30 beside 32 would overprint)
    ticks = sorted(ours | {k for k in scan.layers if all(abs(k - o) > 0.1 * k for o in ours)})
    for ax, m in zip(axes, SCAN_METRICS):
        ax.plot(table.index, table[m], "o-", label=f"E4SRec_k (ours, {book.dataset})")
        ax.axhline(table[f"SASRec {m}"].iloc[0], ls="--", color="C1", label="SASRec (ours)")
        ax.plot(scan.layers, 100 * scan[m], "s:", color="grey", alpha=0.7,
                label=f"paper, Cloth, Llama-2-7B (read by eye; {PAPER_DEPTH} layers)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(k) for k in ticks], fontsize=8)
        ax.set(xlabel="decoder layers kept (k)", ylabel=f"{m} (%)", title=m)
    axes[0].legend(fontsize=7)
    extra = dict(seeds=seeds_text(rows), users=users_text(rows)) if rows is not None else {}
    fig.suptitle(book.caption("E4SRec_k: accuracy against depth (test, sampled protocol, percent)", **extra),
                 fontsize=10)
    return fig


def metric_bars(rows: pd.DataFrame, book: Book, what: str, metrics=SCAN_METRICS, ax=None, note: str = ""):
    """Mean (bar) and standard deviation over seeds (whisker, where there are several seeds) of each
    model, in percent. Models scored on few test users are starred and named under the figure."""
    rows = normalized(rows) if "group" not in rows.columns else rows
    r = select(rows, metrics).assign(value=lambda d: 100 * d.value)
    info = groups(r)
    few = set(few_users(r))
    shown = {g: info.name[g] + (" *" if info.name[g] in few else "") for g in info.index}
    r = r.assign(shown=r.group.map(shown))
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(shown) * len(metrics) / 2), 4.2), layout="constrained")
    multi = r.groupby("group").seed.nunique().max() > 1
    sns.barplot(data=r, x="metric", y="value", hue="shown", order=list(metrics), hue_order=list(shown.values()),
                errorbar="sd" if multi else None, ax=ax)
    ax.set(xlabel="", ylabel=f"% (test, {protocol_kind(sampled_protocol(rows))})")
    ax.legend(fontsize=7, ncols=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    foot = [_spread(r)]
    if few:
        foot.append(f"* scored on few test users ({users_text(r)}): a wide margin of error")
    if note:
        foot.append(note)
    ax.text(0, -0.1, "; ".join(foot), transform=ax.transAxes, fontsize=7, va="top", wrap=True)
    if own:
        ax.set_title(book.caption(what, seeds_text(rows), users_text(r)), fontsize=10)
        return fig
    return ax


def main_table(rows: pd.DataFrame, table: pd.DataFrame, book: Book):
    """Left: our metrics per model; right: each model's average improvement, ours over our reference
    and the paper's over the paper's row of it (both named on the axis)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(17, 5.5), gridspec_kw=dict(width_ratios=[1.7, 1]),
                                      layout="constrained")
    metric_bars(rows, book, "", ax=left)
    avg = pd.DataFrame({"ours": table[("avg improvement %", "")],
                        "paper (Cloth + Movie), row it plays": table[("paper avg improvement %", "")]})
    avg = avg.rename_axis("model").reset_index().melt(id_vars="model", var_name="source", value_name="pct")
    sns.barplot(data=avg, y="model", x="pct", hue="source", ax=right)
    right.axvline(0, color="black", lw=0.8)
    ref_ours, ref_paper = table.attrs.get("reference_ours", "?"), table.attrs.get("reference_paper") or "no row"
    right.set(xlabel=f"average improvement (%): ours over {ref_ours}, paper's over {ref_paper}", ylabel="")
    right.tick_params(axis="y", labelsize=8)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    fig.suptitle(book.caption("Main table (RQ1): our metrics and the average improvement beside the paper's",
                              seeds_text(normalized(rows)), users_text(normalized(rows))), fontsize=10)
    return fig


def efficiency(timing: pd.DataFrame, book: Book):
    """Speed-up of every timed model over the deepest E4SRec (x, linear), one panel a measure, with the
    ratio and the median ms written beside each bar."""
    from ..timing import summary

    s = summary(timing)
    deepest = s.loc[s.layers.idxmax(), "model"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.6 * len(s) + 2.2), layout="constrained")
    for ax, (measure, speed, unit) in zip(axes, (("inference_ms_per_user", "inference_speedup", "ms a user"),
                                                 ("train_ms_per_step", "train_speedup", "ms a step"))):
        ax.barh(s.model, s[speed], color="C0")
        ax.axvline(1, color="black", lw=0.8)
        for y, (ratio, ms) in enumerate(zip(s[speed], s[measure])):
            ax.text(ratio, y, f" {ratio:.2f}x ({ms:.3g} {unit})", va="center", fontsize=8)
        ax.set(xlabel=f"{measure.split('_')[0]} speed-up over {deepest} (x, median of repeats)", ylabel="",
               xlim=(0, 1.35 * float(s[speed].max())))
        ax.invert_yaxis()
    device = timing.device.iloc[0] if len(timing) else "?"
    repeats = int(timing.groupby(["model", "measure"]).size().max()) if len(timing) else 0
    fig.suptitle(book.caption(f"Timing benchmark (RQ2) on {device}; the student's step includes its teacher's forward",
                              seeds=f"{repeats} repeats", users=f"{int(timing.users.iloc[0])} users a call"
                              if "users" in timing and len(timing) else ""), fontsize=10)
    return fig


def report(comparison: pd.DataFrame, book: Book, rows: pd.DataFrame | None = None):
    """Our average improvement against the paper's, one point a model that plays a paper row."""
    ours = comparison[("avg improvement %", "")]
    theirs = comparison[("paper avg improvement %", "")]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.scatter(theirs, ours)
    for label, row, x, y in zip(comparison.index, comparison[("paper row", "")], theirs, ours):
        shown = label if label == row else f"{label} (as {row})"
        ax.annotate(shown, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo = np.nanmin([theirs.min(), ours.min(), 0]) - 2
    hi = np.nanmax([theirs.max(), ours.max(), 0]) + 2
    ax.plot([lo, hi], [lo, hi], ls=":", color="grey", label="ours = paper")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(0, color="black", lw=0.6)
    ref_ours, ref_paper = comparison.attrs.get("reference_ours", "?"), comparison.attrs.get("reference_paper", "?")
    ax.set(xlabel=f"paper: average improvement over {ref_paper} (%)", ylabel=f"ours: over {ref_ours} (%)")
    ax.legend(fontsize=8)
    extra = dict(seeds=seeds_text(normalized(rows)), users=users_text(normalized(rows))) if rows is not None else {}
    ax.set_title(book.caption("Ours against the paper, row by row (test, sampled protocol)", **extra), fontsize=9)
    return fig
