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


def baselines(rows: pd.DataFrame, book: Book, published: dict | None = None):
    """The ladder: test NDCG@10 (percent) of every SASRec rung and every LLM row, one panel a protocol,
    mean bars with std whiskers over seeds; the published number of the BCE setting as a line where
    the book holds one (full ranking)."""
    from .ladder import ladder_models
    from .runs import protocols

    rows = normalized(rows) if "group" not in rows.columns else rows
    models = ladder_models(rows, book)
    shown = protocols(rows)
    fig, axes = plt.subplots(1, len(shown), figsize=(6.5 * len(shown), 4.6), layout="constrained", squeeze=False)
    order = list(models.model)
    colour = {m: ("C0" if p == "SASRec rung" else "C1" if r == "main" else "C2")
              for m, p, r in zip(models.model, models.part, models.rung)}
    for ax, p in zip(axes[0], shown):
        r = rows[(rows.stage == "test") & (rows.protocol == p) & (rows.metric == "NDCG@10")
                 & rows.group.isin(models.group)]
        r = r.assign(value=100 * r.value, model=r.group.map(dict(zip(models.group, models.model))))
        sns.barplot(data=r, y="model", x="value", order=order, palette=colour, hue="model", legend=False,
                    errorbar="sd", ax=ax)
        seeds = r.groupby("model").seed.nunique()
        for y, m in enumerate(order):
            mean = r[r.model == m].value.mean()
            if mean == mean:
                ax.text(mean, y, f" {mean:.2f} ({seeds.get(m, 0)} seed{'s' if seeds.get(m, 0) != 1 else ''})",
                        va="center", fontsize=8)
        if published and p == "full" and "NDCG@10" in published:
            ax.axvline(100 * published["NDCG@10"], ls="--", color="black", lw=0.9,
                       label=f"published BCE SASRec ({100 * published['NDCG@10']:.2f})")
            ax.legend(fontsize=8, loc="lower right")
        ax.set(xlabel=f"NDCG@10 (%, test, {protocol_kind(p)})", ylabel="", xlim=(0, 1.3 * float(r.value.max())))
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(book.caption("The SASRec ladder and the LLM rows (blue: SASRec rungs; orange: LLM on the CE table; "
                              "green: LLM on the BCE table); whiskers: std over seeds",
                              seeds_text(rows), users_text(rows)), fontsize=10)
    return fig


def depth_controls(table: pd.DataFrame, book: Book, rows: pd.DataFrame | None = None):
    """The controls from `ladder.control_table` (percent, NDCG@10, the sampled protocol): (a) pretrained
    vs random weights by depth; (b) the order drop from plain to shuffled histories; (c) the item table
    frozen vs trainable and one row a user vs every prefix. Points and bars are means over seeds,
    whiskers the std over seeds (none with one seed)."""
    from .runs import protocols

    t = table.reset_index()
    kind = protocol_kind(protocols(rows)[0]) if rows is not None else "sampled 1+999"
    col, drop = f"{kind} NDCG@10", f"{kind} order drop %"

    def sd(part, name):  # whiskers: the std over seeds, where there is one
        return part[f"{name} sd"].fillna(0).to_numpy() if f"{name} sd" in part.columns else None

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), layout="constrained")
    ax = axes[0]
    for setting, style in (("pretrained", "o-"), ("random", "s--")):
        part = t[t.setting == setting].sort_values("layers")
        ax.errorbar(part.layers, part[col], yerr=sd(part, col), fmt=style, capsize=3, label=f"{setting} weights")
    sas = t[t.setting == "SASRec"]
    if len(sas):
        ax.axhline(float(sas[col].iloc[0]), color="C3", ls=":", label="SASRec (same controls)")
    ax.set(xlabel="decoder layers kept (k)", ylabel=f"NDCG@10 (%, test, {kind})", title="(a) pretrained or not")
    ax.legend(fontsize=8)
    ax = axes[1]
    if drop in t.columns:
        part = t[t.setting.isin(["SASRec", "pretrained", "random"])]
        ax.barh(part.model, part[drop], xerr=sd(part, drop), capsize=3,
                color=["C3" if s == "SASRec" else "C0" if s == "pretrained" else "C1" for s in part.setting])
        for y, v in enumerate(part[drop]):
            ax.text(v, y - 0.3, f" {v:.1f}%", va="center", fontsize=8)
        ax.invert_yaxis()
    ax.set(xlabel=f"drop of NDCG@10 on shuffled histories (%, {kind}; relative to plain histories)", ylabel="",
           title="(b) order use")
    ax.tick_params(axis="y", labelsize=8)
    ax = axes[2]
    part = t[t.setting.isin(["pretrained", "trainable", "prefixes"])
             & t.layers.isin(t[t.setting.isin(["trainable", "prefixes"])].layers)]
    ax.barh(part.model, part[col], xerr=sd(part, col), capsize=3,
            color=["C0" if s == "pretrained" else "C2" for s in part.setting])
    for y, v in enumerate(part[col]):
        ax.text(v, y - 0.3, f" {v:.2f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=f"NDCG@10 (%, test, {kind})", ylabel="", title="(c) item table and training rows",
           xlim=(0, 1.25 * float(part[col].max())) if len(part) else None)
    ax.tick_params(axis="y", labelsize=8)
    drawn = [t.setting.isin(["pretrained", "random"]).any(), t.setting.isin(["pretrained", "random"]).any(), len(part) > 0]
    for ax, has_llm in zip(axes, drawn):  # a panel without its LLM runs (missing on this machine) says so
        if not has_llm:
            ax.text(0.5, 0.5, "E4SRec control runs not made (missing on this machine)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9, color="grey")
            ax.set_xticks([])
    extra = {}
    if rows is not None:
        r = normalized(rows)
        extra = dict(seeds=f"{seeds_text(r)} ({_spread(r).replace('bars', 'points and bars')})", users=users_text(r))
    fig.suptitle(book.caption("Depth controls (fp32 scores, one item table; compare within this figure)", **extra),
                 fontsize=10)
    return fig


def layer_distances(frame: pd.DataFrame, book: Book):
    """Heat maps of the angular distance between the last-token states of layer l and l + n (Gromov
    et al. 2024), one panel a model (pretrained, random weights), on one colour scale."""
    from .ladder import distance_matrix

    models = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(6.5 * max(1, len(models)), 4.8), layout="constrained",
                             squeeze=False)
    vmax = float(frame.angular_distance.max()) if len(frame) else 1.0
    for ax, m in zip(axes[0], models):
        mat = distance_matrix(frame[frame.model == m])
        sns.heatmap(mat, ax=ax, vmin=0, vmax=vmax, cmap="viridis", cbar_kws=dict(label="angular distance"))
        ax.set(xlabel="first layer l (0: the embeddings)", ylabel="shift n (layers skipped)", title=m)
        ax.grid(False)
        ax.invert_yaxis()
    users = int(frame.users.iloc[0]) if len(frame) else 0
    seeds = int(frame.seeds.min()) if "seeds" in frame.columns and len(frame) else 1
    fig.suptitle(book.caption("Angular distance arccos(cos)/pi between layer l and l + n, last token (Gromov et al. "
                              "2024); low: the n layers barely change the state", users=f"{users} test users",
                              seeds=f"mean over {seeds} seed(s)"),
                 fontsize=10)
    return fig
