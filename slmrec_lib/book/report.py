"""results/<profile>/report.md and report.csv: the claims' verdicts, our numbers beside the paper's,
protocol agreement, the authors' code beside the book's (benchmarks/authors_code) and what is not run
yet. The files depend only on the runs they read (their git shas are printed, not the renderer's), so
re-rendering unchanged runs leaves them unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..util import atomic_write_text
from . import authors_code, efficiency
from .claims import ALPHA, FAILS, HOLDS, INCONCLUSIVE, N_BOOT, NO_RANKS, NOT_MEASURED, NOT_RUN, PAIRED_METRIC, side_by_side
from .context import Book
from .tables import formatted, markdown_table

TESTS_TEXT = (
    "How a claim \"A scores above B\" is judged, under each protocol separately: a model's score of a seed is "
    "the mean over the six metrics of its relative change (%) against B's mean over seeds. Seed-level test: "
    "Welch's unequal-variance t-test (scipy.stats.ttest_ind, one-sided A > B) on those per-seed scores, "
    "with its two-sided 95% interval of the difference (percent points). Where every run of both models kept "
    f"its per-user ranks, the two-level paired bootstrap over seeds and users of {PAIRED_METRIC} ({N_BOOT:,} "
    "replicates, percentile 95% interval of the relative change) is the primary test and the Wilcoxon "
    f"signed-rank test over users a second opinion; runs without them are marked \"{NO_RANKS}\". The primary "
    "p-values of all claims and protocols of this report are Holm-adjusted together. Verdict: holds if the "
    f"adjusted p < {ALPHA}; does not hold if the interval lies below 0 or the adjusted p of the opposite "
    "direction is below it; otherwise inconclusive (always with one seed a side and no stored ranks). "
    "The order control (\"plain vs shuffled\") sets one run's scores on the plain test histories against the "
    "same run's on the same histories with their items in a seeded random order (same users and candidates), "
    f"by the same tests. A claim of the ladder or the controls whose runs this machine lacks is \"{NOT_RUN}\". "
    "Efficiency claims: our ratio against the paper's, scaled to our depths, within a stated tolerance."
)


def _git_shas(rows: pd.DataFrame, book: Book) -> str:
    """The commits the runs were made at. A sha of digits and one "e" ("7729e10") comes back from a CSV
    as a float: such a run's sha is read again from its rows.csv as text."""
    from .. import paths

    shas = set()
    for h, sha in rows.drop_duplicates("config_hash")[["config_hash", "git_sha"]].itertuples(index=False):
        if isinstance(sha, float) and sha == sha:
            path = paths.results_dir(book.name) / "runs" / str(h) / "rows.csv"
            sha = pd.read_csv(path, dtype={"git_sha": str}, usecols=["git_sha"]).git_sha.iloc[0] if path.exists() else ""
        if isinstance(sha, str) and sha:
            shas.add(sha)
    return ", ".join(sorted(shas)) if shas else "unknown"


def write_report(book: Book, comparison: pd.DataFrame, claims: pd.DataFrame, missing: list[dict] | None = None,
                 rows: pd.DataFrame | None = None, agreement: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """results/<profile>/report.csv (one row a claim and protocol) and report.md (verdicts side by side
    per protocol, the comparison, protocol agreement, the runs not made yet; `missing` as in
    `rows.attrs["missing"]`). For a dataset other than the profile's first: report-<dataset>.csv / .md."""
    stem = "report" if book.dataset == book.profile.datasets[0] else f"report-{book.slug}"
    csv_path, md_path = book.results_path(f"{stem}.csv"), book.results_path(f"{stem}.md")
    atomic_write_text(claims.assign(profile=book.name, dataset=book.dataset).to_csv(index=False), csv_path)
    counts = claims.verdict.value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED, NOT_RUN)
                      if v not in (NOT_MEASURED, NOT_RUN) or counts.get(v))
    runs_from = f"Runs made at git {_git_shas(rows, book)}." if rows is not None and len(rows) else ""
    if "protocol" in claims.columns:
        accuracy = (claims.protocol.fillna("") != "") | (claims.verdict == NOT_RUN)
        acc, eff = claims[accuracy], claims[~accuracy]
    else:
        acc, eff = claims.iloc[:0], claims
    md = [f"## Results of the `{book.name}` profile ({book.dataset}, backbone {book.backbone})", "",
          f"{book.profile.description}. {runs_from} Written by notebooks/07_report.", "",
          f"Verdicts (one a claim and protocol): {tally}.", "",
          "### The paper's claims", "", TESTS_TEXT, ""]
    if len(acc):
        md += ["Effects: our relative change of A over B in percent, [95% interval]; adj. p: Holm-adjusted "
               "one-sided p.", "", markdown_table(side_by_side(acc)), ""]
        notes = acc[acc.verdict != NOT_RUN][["ours", "protocol", "ndcg10", "paired", "detail"]].rename(
            columns={"ndcg10": f"{PAIRED_METRIC} relative change (Fieller 95%)", "paired": "user-level test",
                     "detail": "Welch test"})
        md += ["Details of each test:", "", markdown_table(notes), ""]
    rq2 = eff[eff.rq == "RQ2"] if "rq" in eff.columns else eff
    if len(rq2):
        md += ["### Efficiency (RQ2)", "", f"At the profile's backbone ({book.backbone}):", "",
               markdown_table(rq2[["rq", "claim", "ours", "paper", "verdict", "detail"]]), ""]
    md += efficiency.report_lines(book)  # the paper's scale (Llama-2-7B shape), or the command that measures it
    described = eff[eff.rq != "RQ2"] if "rq" in eff.columns else eff.iloc[:0]
    if len(described):
        md += ["### Descriptive controls", "", "Lines without a test (the runs saved means only).", "",
               markdown_table(described[["rq", "claim", "ours", "paper", "verdict", "test", "detail"]]), ""]
    if agreement is not None and len(agreement):
        md += ["### Protocol agreement", "",
               "Kendall's tau-b between the models' orderings under the sampled protocol and full ranking "
               "(1: the same order).", "", markdown_table(agreement, digits=3), ""]
    if comparison is not None and len(comparison):
        md += ["### Our numbers beside the paper's", "",
               f"Ours: test stage, sampled protocol, percent, mean ± std over seeds (one value with one seed); the "
               f"paper's Cloth / Movie beside. Average improvements are relative to "
               f"{comparison.attrs.get('reference', 'E4SRec*')}.", "",
               markdown_table(formatted(comparison)), ""]
    md += authors_code.report_lines(book)  # the authors' code beside the book's, or the command that runs it
    if missing:
        gone = pd.DataFrame(missing).groupby(["label", "dataset"]).seed.agg(lambda s: ", ".join(map(str, sorted(s))))
        md += [f"### Not run yet ({len(missing)} runs)", "",
               "These runs of the profile have no saved result; the tables and verdicts above leave them out.", "",
               markdown_table(gone.rename("seeds").reset_index()), ""]
    atomic_write_text("\n".join(md), md_path)
    return csv_path, md_path
