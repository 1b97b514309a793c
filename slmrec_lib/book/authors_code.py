"""The authors' code beside the book's (benchmarks/authors_code/): the committed CSVs of
`benchmarks/authors_code/run.py`, one a seed, read into a summary per (model, code), a computed
finding, a figure and the report's section.

The CSVs (results/benchmarks/authors_code_<dataset>_seed<S>.csv; columns code, model, seed, protocol,
metric, value, train_seconds, device, commit) hold, per seed and model:
- `sampled-999-seed0`: the book's evaluator (fixed seeded 1 + 999 candidates, ties counted against
  the positive) on fp32 scores of every test user, for both codes, plus `ties_per_user`;
- `exactness-64-users` (authors only): `adapter_max_abs_diff`, the largest difference between the user
  vectors of their own model and of the book's model carrying their weights (first 64 test users);
- `authors-own-redrawn-999` (authors only): their own test (999 negatives redrawn on every call, ties
  broken by argsort order).

The benchmark runs the book's `gpu` profile (its only full-size profile); no other profile has one.
`train_seconds` in the CSVs are not a speed comparison: the H200 was shared with other trainings, and
the authors' include their validations every 100 steps. The summary leaves them out.

Statistics: per model, authors minus book on the per-seed NDCG@10 (percent points), Welch's
unequal-variance t-test (`stats.welch`, two-sided) with its two-sided 95% interval, the p-values
Holm-adjusted over the models; within the authors' code, E4SRec_8 against E4SRec_4 (one-sided,
deeper above) and SLMRec_4<-8 against E4SRec_8 (two-sided), by the same test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..stats import holm, welch
from .context import Book
from .tables import markdown_table, mean_sd_text

PROTOCOL = "sampled-999-seed0"  # the book's evaluator on fixed candidates
EXACTNESS = "exactness-64-users"
OWN_TEST = "authors-own-redrawn-999"
METRICS = ("NDCG@10", "HR@10", "MRR")
CODES = ("authors", "book")
MODELS = ("E4SRec_4", "E4SRec_8", "SLMRec_4<-8")
PROFILES = ("gpu",)  # the profiles `run.py --profile` runs at full size
ALPHA = 0.05
COLUMNS = ("code", "model", "seed", "protocol", "metric", "value", "train_seconds", "device", "commit")
COMMAND = ("python benchmarks/authors_code/run.py --source <their checkout at 0555b8d> --dataset {dataset} "
           "--seeds {seed} --backbone smollm2 --authors-site <their packages> --out {out} "
           "(benchmarks/authors_code/README.md: how to get their code and run it on a GPU)")
SETTING = "{device}, gpu profile, SmolLM2-135M, same item table"  # what both codes ran on (`setting`)


class AuthorsCodeError(FileNotFoundError):
    """The benchmark's CSVs are missing or malformed; the message names the file and the command."""


def folder() -> Path:
    """Where the benchmark's CSVs are committed: results/benchmarks (or under $SLMREC_RESULTS_DIR)."""
    return paths.results_dir("benchmarks")


def setting(rows: pd.DataFrame) -> str:
    """"H200, gpu profile, SmolLM2-135M, same item table", the device(s) read from the rows."""
    devices = sorted({str(d).removeprefix("NVIDIA ") for d in rows.device.unique()})
    return SETTING.format(device=" / ".join(devices) or "unknown device")


def _slug(dataset: str) -> str:
    return Path(dataset).stem.lower()


def csv_paths(dataset: str = "beauty", where: Path | None = None) -> list[Path]:
    """The CSVs of one dataset, one a seed, in seed order."""
    where = folder() if where is None else Path(where)
    return sorted(where.glob(f"authors_code_{_slug(dataset)}_seed*.csv"))


def command(dataset: str = "beauty", seed: str = "S") -> str:
    out = f"results/benchmarks/authors_code_{_slug(dataset)}_seed{seed}.csv"
    return COMMAND.format(dataset=_slug(dataset), seed=seed, out=out)


def load(dataset: str = "beauty", where: Path | None = None) -> pd.DataFrame:
    """Every row of the benchmark's CSVs of `dataset`, checked: the columns, both codes, finite values."""
    files = csv_paths(dataset, where)
    if not files:
        expected = (folder() if where is None else Path(where)) / f"authors_code_{_slug(dataset)}_seed<S>.csv"
        raise AuthorsCodeError(f"no benchmark CSV {expected}: the authors' code beside the book's has not been run "
                               f"for {dataset}. Make one a seed with: {command(dataset)}")
    frames = []
    for f in files:
        frame = pd.read_csv(f, dtype={"commit": str, "code": str, "model": str})
        missing = sorted(set(COLUMNS) - set(frame.columns))
        if missing:
            raise AuthorsCodeError(f"{f} lacks the columns {missing}: write it again with {command(dataset)}")
        frames.append(frame.assign(source=f.name))
    rows = pd.concat(frames, ignore_index=True)
    bad = rows[~np.isfinite(rows.value.astype(float))]
    if len(bad):
        raise AuthorsCodeError(f"non-finite values in {sorted(bad.source.unique())}: {bad.head(3).to_dict('records')}")
    return rows


def for_book(book: Book) -> pd.DataFrame | None:
    """The benchmark's rows for a notebook's profile and dataset, or None where there are none (a
    profile the benchmark does not run, or no CSVs yet): `not_run_text` says which and how to make them."""
    if book.name not in PROFILES or not csv_paths(book.dataset):
        return None
    return load(book.dataset)


def not_run_text(book: Book) -> str:
    why = (f"the benchmark runs the {' / '.join(PROFILES)} profile only" if book.name not in PROFILES
           else f"no results/benchmarks/authors_code_{_slug(book.dataset)}_seed*.csv yet")
    return (f"The authors' code beside the book's has not been run for this profile ({book.name}, {book.dataset}: "
            f"{why}). Make it one seed at a time with: {command(book.dataset)}")


def test_users(book: Book) -> int:
    """The test users of the benchmark: every user of the profile's data (both codes score all of them)."""
    from .. import studies
    from ..experiment import get_data

    return int(get_data(studies.data(book.profile, book.dataset)).n_users)


# ------------------------------------------------------------------------------------------- summary
def per_seed(rows: pd.DataFrame, model: str, code: str, metric: str = "NDCG@10", protocol: str = PROTOCOL,
             scale: float = 100.0) -> np.ndarray:
    """One value a seed (in seed order) of one model, code, protocol and metric, x `scale` (percent points)."""
    r = rows[(rows.model == model) & (rows.code == code) & (rows.protocol == protocol) & (rows.metric == metric)]
    if r.seed.duplicated().any():
        raise AuthorsCodeError(f"{code} {model} {protocol} {metric}: a seed appears twice ({sorted(r.seed)})")
    return scale * r.sort_values("seed").value.to_numpy(dtype=float)


def _mean_sd(v: np.ndarray) -> tuple[float, float]:
    if len(v) == 0:
        return np.nan, np.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else np.nan


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row a (model, code), in MODELS x CODES order: mean and sd over seeds of NDCG@10, HR@10 and MRR
    (percent points, the book's evaluator), the seeds, ties per user (mean over seeds); on the
    authors' row: authors minus book NDCG@10 with its Welch 95% interval, two-sided p and Holm-adjusted p
    over the models, the exactness check (largest adapter_max_abs_diff over seeds) and their own
    redrawn-negatives test NDCG@10 (mean and sd)."""
    models = [m for m in MODELS if m in set(rows.model)] + sorted(set(rows.model) - set(MODELS))
    out = []
    for model in models:
        for code in CODES:
            nd = per_seed(rows, model, code)
            if not len(nd):
                continue
            rec = {"model": model, "code": code, "seeds": len(nd)}
            for m in METRICS:
                rec[f"{m} mean"], rec[f"{m} sd"] = _mean_sd(per_seed(rows, model, code, m))
            ties = per_seed(rows, model, code, "ties_per_user", scale=1.0)
            rec["ties per user"] = float(ties.mean()) if len(ties) else np.nan
            book_nd = per_seed(rows, model, "book")
            if code == "authors" and len(book_nd):
                w = welch(nd, book_nd, alternative="two-sided", alpha=ALPHA)
                rec.update({"authors - book NDCG@10": w.diff, "CI low": w.ci_low, "CI high": w.ci_high, "p": w.p})
            exact = per_seed(rows, model, code, "adapter_max_abs_diff", EXACTNESS, scale=1.0)
            rec["exactness max abs diff"] = float(exact.max()) if len(exact) else np.nan
            own = per_seed(rows, model, code, "NDCG@10", OWN_TEST)
            rec["own test NDCG@10 mean"], rec["own test NDCG@10 sd"] = _mean_sd(own)
            out.append(rec)
    frame = pd.DataFrame(out)
    for col in ("authors - book NDCG@10", "CI low", "CI high", "p"):
        if col not in frame:
            frame[col] = np.nan
    frame["p Holm"] = holm(frame["p"].to_numpy(dtype=float))
    frame = frame.set_index(["model", "code"])
    frame.attrs.update(protocol=PROTOCOL, seeds=sorted(int(s) for s in rows.seed.unique()),
                       device=", ".join(sorted(rows.device.astype(str).unique())))
    frame.attrs["rows"] = rows
    return frame


def formatted(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The summary for reading: "mean ± sd" cells, the difference as "+d [lo, hi]", p to 2 digits."""
    out = pd.DataFrame(index=table.index)
    for m in METRICS:
        out[m] = [mean_sd_text(a, b, digits) for a, b in zip(table[f"{m} mean"], table[f"{m} sd"])]
    out["seeds"] = table["seeds"].astype(int)
    out["authors - book NDCG@10 [95% CI]"] = [
        "" if d != d else f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
        for d, lo, hi in zip(table["authors - book NDCG@10"], table["CI low"], table["CI high"])]
    out["Welch p (Holm)"] = ["" if p != p else f"{p:.2f} ({ph:.2f})" for p, ph in zip(table["p"], table["p Holm"])]
    out["ties / user"] = [f"{t:.2g}" if t == t else "" for t in table["ties per user"]]
    out["exactness max abs diff"] = [f"{e:.1e}" if e == e else "" for e in table["exactness max abs diff"]]
    out["their own test NDCG@10"] = [mean_sd_text(a, b, digits) for a, b in zip(table["own test NDCG@10 mean"],
                                                              table["own test NDCG@10 sd"])]
    return out


# ------------------------------------------------------------------------------------------- finding
def _test_text(w) -> str:
    if w.reason:
        return f"difference {w.diff:+.2f} points, no test: {w.reason}"
    return (f"{w.diff:+.2f} points [95% CI {w.ci_low:+.2f}, {w.ci_high:+.2f}], Welch p ({w.alternative}) "
            f"= {w.p:.2g}")


def _mean(rows, model, code="authors") -> float:
    return float(per_seed(rows, model, code).mean())


def depth_and_distillation(rows: pd.DataFrame, code: str = "authors") -> dict[str, tuple[str, object]]:
    """Within one code: "depth" (E4SRec_8 against E4SRec_4, Welch one-sided, deeper above: beats /
    does not beat / scores below) and "student" (SLMRec_4<-8 against E4SRec_8, Welch two-sided: scores
    above / matches within the seed spread / scores below), each as (verdict, WelchResult)."""
    have = set(rows[rows.code == code].model)
    out = {}
    if {"E4SRec_4", "E4SRec_8"} <= have:
        w = welch(per_seed(rows, "E4SRec_8", code), per_seed(rows, "E4SRec_4", code), "greater", ALPHA)
        verdict = ("beats" if w.p == w.p and w.p < ALPHA else
                   "scores below" if w.ci_high == w.ci_high and w.ci_high < 0 else "does not beat")
        out["depth"] = (verdict, w)
    if {"SLMRec_4<-8", "E4SRec_8"} <= have:
        w = welch(per_seed(rows, "SLMRec_4<-8", code), per_seed(rows, "E4SRec_8", code), "two-sided", ALPHA)
        verdict = ("scores above" if w.ci_low == w.ci_low and w.ci_low > 0 else
                   "scores below" if w.ci_high == w.ci_high and w.ci_high < 0 else "matches within the seed spread")
        out["student"] = (verdict, w)
    return out


def _same(theirs: str, ours: str | None) -> str:
    if ours is None:
        return ""
    return "; the book's code: the same" if ours == theirs else f"; the book's code: {ours}"


def finding(table: pd.DataFrame) -> str:
    """One paragraph computed from `summary(...)`: depth and distillation under the authors' code (and
    whether the book's code agrees), how far their rows lie from the book's, the exactness check and
    their own test. Every number is read from the table and its rows."""
    rows = table.attrs["rows"]
    seeds = table.attrs.get("seeds", [])
    n_seeds = int(table.seeds.min()) if len(table) else 0
    text = (f"The authors' code at the same scale ({setting(rows)}; {n_seeds} seeds a side; NDCG@10 in points, "
            f"the book's evaluator, {table.attrs.get('protocol', PROTOCOL)}) gives")
    theirs, ours = depth_and_distillation(rows, "authors"), depth_and_distillation(rows, "book")
    parts = []
    if "depth" in theirs:
        verdict, w = theirs["depth"]
        parts.append(f"E4SRec_8 {_mean(rows, 'E4SRec_8'):.2f} against E4SRec_4 {_mean(rows, 'E4SRec_4'):.2f}: "
                     f"E4SRec_8 {verdict} E4SRec_4 ({_test_text(w)}"
                     f"{_same(verdict, ours.get('depth', (None,))[0])})")
    if "student" in theirs:
        verdict, w = theirs["student"]
        said = {"matches within the seed spread": "matches its teacher E4SRec_8 within the seed spread"}.get(
            verdict, f"{verdict} its teacher E4SRec_8")
        parts.append(f"SLMRec_4<-8 {_mean(rows, 'SLMRec_4<-8'):.2f}: the student {said} "
                     f"({_test_text(w)}{_same(verdict, ours.get('student', (None,))[0])})")
    text += " " + "; ".join(parts) + "." if parts else " no pair of the authors' models to compare."
    both = table.dropna(subset=["authors - book NDCG@10"])
    if len(both):
        d = both["authors - book NDCG@10"]
        diffs = ", ".join(f"{m} {r['authors - book NDCG@10']:+.2f} [{r['CI low']:+.2f}, {r['CI high']:+.2f}], "
                          f"p = {r['p']:.2g}" for (m, _), r in both.iterrows())
        side = (f", all {len(d)} below" if (d < 0).all() else f", all {len(d)} above" if (d > 0).all() else "")
        significant = int((both["p Holm"] < ALPHA).sum())
        verdict = (f"none of the {len(both)} differences is significant at {ALPHA:g} after Holm"
                   if significant == 0 else f"{significant} of the {len(both)} differ at {ALPHA:g} after Holm")
        text += (f" Their rows lie within {float(d.abs().max()):.2f} NDCG@10 points of the book's{side} (authors "
                 f"minus book, 95% CI, two-sided Welch over seeds: {diffs}): {verdict}.")
    exact = table["exactness max abs diff"].dropna()
    if len(exact):
        text += (f" Their trained weights loaded into the book's model give their own user vectors to within "
                 f"{float(exact.max()):.1e} (largest absolute difference, first 64 test users, every run).")
    own = table["own test NDCG@10 mean"].dropna()
    if len(own):
        names = " / ".join(m for m, _ in own.index)
        theirs_own = " / ".join(f"{v:.2f}" for v in own)
        theirs_fixed = " / ".join(f"{v:.2f}" for v in table.loc[own.index, "NDCG@10 mean"])
        text += (f" Their own test (negatives redrawn on every call, ties by argsort order) gives {names} "
                 f"{theirs_own} against {theirs_fixed} on the book's fixed candidates.")
    if seeds:
        text += f" Seeds {', '.join(map(str, seeds))}."
    return text


# ------------------------------------------------------------------------------------------- figure
def figure(rows: pd.DataFrame, users: int | None = None, dataset: str = "beauty"):
    """NDCG@10 (points) per model, the authors' code beside the book's: one dot a seed, a bar for the
    mean; the title names the seeds, the test users, the protocol and the setting."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    r = rows[(rows.protocol == PROTOCOL) & (rows.metric == "NDCG@10")].assign(
        value=lambda d: 100 * d.value.astype(float))
    order = [m for m in MODELS if m in set(r.model)]
    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    sns.stripplot(data=r, x="model", y="value", hue="code", hue_order=list(CODES), order=order, dodge=True,
                  size=7, alpha=0.75, jitter=False, ax=ax)  # no jitter: it draws from an unseeded generator
    sns.pointplot(data=r, x="model", y="value", hue="code", hue_order=list(CODES), order=order, dodge=0.4,
                  errorbar=None, markers="_", markersize=28, linestyle="none", palette=["black", "black"],
                  legend=False, ax=ax)
    for i, m in enumerate(order):
        for j, code in enumerate(CODES):
            v = r[(r.model == m) & (r.code == code)].value
            if len(v):
                ax.annotate(f"{v.mean():.2f}", (i - 0.2 + 0.4 * j, v.mean()), xytext=(14, -3),
                            textcoords="offset points", fontsize=8)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles[:len(CODES)], ["the authors' code (0555b8d)", "the book's code"], fontsize=8, loc="best")
    ax.set(xlabel="", ylabel="NDCG@10 x 100 (test; axis not from 0)")
    seeds = sorted(int(s) for s in r.seed.unique())
    who = f"{users:,} {dataset.capitalize()} test users" if users else f"all {dataset.capitalize()} test users"
    ax.set_title(f"The authors' code beside the book's: NDCG@10 per seed (dots) and mean (bar)\n"
                 f"{setting(rows)}; seeds {', '.join(map(str, seeds))}; {who}\n"
                 f"protocol {PROTOCOL}: 1 + 999 fixed candidates, ties against the positive, fp32 scores", fontsize=9)
    return fig


def figure_path(book: Book) -> Path:
    """figures/<profile>/authors_code.png (the profile's first dataset), else authors_code-<dataset>.png."""
    first = book.dataset == book.profile.datasets[0]
    return book.figure_path("authors_code").with_name("authors_code.png" if first else f"authors_code-{book.slug}.png")


# ------------------------------------------------------------------------------------------- report
def report_lines(book: Book) -> list[str]:
    """The report's section: the summary and the computed finding where the profile has the benchmark's
    CSVs, else a line saying it has not been run and the command that runs it."""
    md = ["### The authors' code at the same scale", ""]
    rows = for_book(book)
    if rows is None:
        return md + [not_run_text(book), ""]
    table = summary(rows)
    return md + [finding(table), "",
                 "train_seconds of the benchmark are no speed comparison (a shared H200; the authors' include their "
                 "validations every 100 steps) and are left out.", "",
                 markdown_table(formatted(table)), ""]


def main(argv=None) -> int:
    """Print the summary (markdown) and the finding of a dataset's committed CSVs:
    `python -c "from slmrec_lib.book import authors_code; authors_code.main()" [--dataset beauty]`."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--folder", type=Path, default=None, help="where the CSVs are (default results/benchmarks)")
    args = parser.parse_args(argv)
    table = summary(load(args.dataset, args.folder))
    print(markdown_table(formatted(table)), "", finding(table), sep="\n")
    return 0
