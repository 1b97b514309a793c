"""book.authors_code: the summary of the authors'-code benchmark from its CSVs (known means and Welch
results on synthetic CSVs), the computed finding, the missing-file error, the figure and the report's
section."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from slmrec_lib import book, paths
from slmrec_lib.book import authors_code as ac

SEEDS = (0, 1, 2)


def _ndcg(authors: dict, book_side: dict) -> dict:
    """{(code, model): [NDCG@10 a seed]} from per-model lists of the two sides (fractions, not points)."""
    return {**{("authors", m): v for m, v in authors.items()}, **{("book", m): v for m, v in book_side.items()}}


BASE_AUTHORS = {"E4SRec_4": [0.140, 0.142, 0.138], "E4SRec_8": [0.139, 0.141, 0.140],
                "SLMRec_4<-8": [0.141, 0.143, 0.142]}
BASE_BOOK = {"E4SRec_4": [0.141, 0.143, 0.142], "E4SRec_8": [0.140, 0.143, 0.141],
             "SLMRec_4<-8": [0.142, 0.141, 0.144]}


def write_csvs(folder, ndcg: dict, dataset: str = "beauty") -> list:
    """One CSV a seed in the benchmark's columns: NDCG@10 as given, HR@10 = NDCG + 0.08, MRR = NDCG - 0.02,
    ties_per_user 0.001 * seed; authors also exactness (1e-5 * (seed + 1)) and their own test."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, seed in enumerate(SEEDS):
        rows = []
        for (code, model), values in ndcg.items():
            v = values[i]
            base = dict(code=code, model=model, seed=seed, train_seconds=10.0 + seed, device="NVIDIA H200",
                        commit="0555b8d" if code == "authors" else "7729e10")
            metrics = {"NDCG@10": v, "HR@10": v + 0.08, "MRR": v - 0.02, "ties_per_user": 0.001 * seed,
                       "users_with_ties": 0.0}
            rows += [dict(base, protocol=ac.PROTOCOL, metric=m, value=x) for m, x in metrics.items()]
            if code == "authors":
                rows.append(dict(base, protocol=ac.EXACTNESS, metric="adapter_max_abs_diff", value=1e-5 * (seed + 1)))
                rows.append(dict(base, protocol=ac.OWN_TEST, metric="NDCG@10", value=v - 0.001))
        path = folder / f"authors_code_{dataset}_seed{seed}.csv"
        pd.DataFrame(rows, columns=list(ac.COLUMNS)).to_csv(path, index=False)
        out.append(path)
    return out


def test_summary_means_sd_and_welch_against_scipy(tmp_path):
    write_csvs(tmp_path, _ndcg(BASE_AUTHORS, BASE_BOOK))
    table = ac.summary(ac.load("beauty", tmp_path))
    assert list(table.index) == [(m, c) for m in ac.MODELS for c in ac.CODES]
    assert (table.seeds == 3).all()
    for model in ac.MODELS:
        a, b = 100 * np.array(BASE_AUTHORS[model]), 100 * np.array(BASE_BOOK[model])
        row = table.loc[(model, "authors")]
        assert row["NDCG@10 mean"] == pytest.approx(a.mean())
        assert row["NDCG@10 sd"] == pytest.approx(a.std(ddof=1))
        assert row["HR@10 mean"] == pytest.approx(a.mean() + 8)
        assert row["MRR mean"] == pytest.approx(a.mean() - 2)
        assert table.loc[(model, "book"), "NDCG@10 mean"] == pytest.approx(b.mean())
        ref = sps.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert row["authors - book NDCG@10"] == pytest.approx(a.mean() - b.mean())
        assert row["p"] == pytest.approx(ref.pvalue)
        assert (row["CI low"], row["CI high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert row["exactness max abs diff"] == pytest.approx(3e-5)  # the largest over seeds
        assert row["own test NDCG@10 mean"] == pytest.approx(a.mean() - 0.1)
        assert row["ties per user"] == pytest.approx(0.001)  # mean of 0, 0.001, 0.002
        assert math.isnan(table.loc[(model, "book"), "p"])  # the difference sits on the authors' row
        assert math.isnan(table.loc[(model, "book"), "exactness max abs diff"])
    p = table.xs("authors", level="code")["p"].to_numpy()
    m = len(p)
    order = np.argsort(p)
    expected = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    assert table.xs("authors", level="code")["p Holm"].to_numpy()[order] == pytest.approx(expected)
    shown = ac.formatted(table)
    assert shown.loc[("E4SRec_4", "authors"), "NDCG@10"] == f"{100 * np.mean(BASE_AUTHORS['E4SRec_4']):.2f} ± " \
                                                           f"{100 * np.std(BASE_AUTHORS['E4SRec_4'], ddof=1):.2f}"


def _finding(tmp_path, authors, book_side) -> str:
    write_csvs(tmp_path, _ndcg(authors, book_side))
    return ac.finding(ac.summary(ac.load("beauty", tmp_path)))


def test_the_finding_follows_the_numbers(tmp_path):
    text = _finding(tmp_path / "base", BASE_AUTHORS, BASE_BOOK)
    assert text.startswith("The authors' code at the same scale")
    assert "E4SRec_8 does not beat E4SRec_4" in text
    assert "the student matches its teacher E4SRec_8 within the seed spread" in text
    assert "none of the 3 differences is significant" in text
    assert "Seeds 0, 1, 2." in text and "3.0e-05" in text

    deeper = dict(BASE_AUTHORS, **{"E4SRec_8": [0.150, 0.152, 0.151], "SLMRec_4<-8": [0.160, 0.162, 0.161]})
    text = _finding(tmp_path / "deeper", deeper, BASE_BOOK)
    assert "E4SRec_8 beats E4SRec_4" in text and "the book's code: does not beat" in text
    assert "the student scores above its teacher E4SRec_8" in text

    shallower = dict(BASE_AUTHORS, **{"E4SRec_8": [0.120, 0.121, 0.122], "SLMRec_4<-8": [0.100, 0.101, 0.102]})
    text = _finding(tmp_path / "shallower", shallower, BASE_BOOK)
    assert "E4SRec_8 scores below E4SRec_4" in text and "the student scores below its teacher E4SRec_8" in text

    far = {m: [v + 0.05 for v in vals] for m, vals in BASE_AUTHORS.items()}
    text = _finding(tmp_path / "far", far, BASE_BOOK)
    assert "3 of the 3 differ at 0.05 after Holm" in text and "all 3 above" in text
    assert "none of the" not in text


def test_a_missing_csv_names_the_file_and_the_command(tmp_path):
    with pytest.raises(ac.AuthorsCodeError) as err:
        ac.load("beauty", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "authors_code_beauty_seed<S>.csv") in message
    assert "benchmarks/authors_code/run.py" in message and "--dataset beauty" in message
    pd.DataFrame({"code": ["authors"], "value": [0.1]}).to_csv(tmp_path / "authors_code_beauty_seed0.csv")
    with pytest.raises(ac.AuthorsCodeError, match="lacks the columns"):
        ac.load("beauty", tmp_path)


def _report(profile: str) -> str:
    b = book.start(profile, quiet=True)
    _, md_path = book.write_report(b, None, pd.DataFrame({"verdict": pd.Series([], dtype=str)}))
    return md_path.read_text()


def test_the_report_section_is_the_finding_or_the_command():
    text = _report("cpu")  # the benchmark has no cpu profile, CSVs or not
    assert "### The authors' code at the same scale" in text
    assert "has not been run for this profile (cpu" in text and "benchmarks/authors_code/run.py" in text
    text = _report("gpu")  # gpu, but no CSVs in this test's results folder
    assert "has not been run for this profile (gpu" in text and "The authors' code at the same scale (" not in text
    write_csvs(paths.results_dir("benchmarks"), _ndcg(BASE_AUTHORS, BASE_BOOK))
    text = _report("gpu")
    assert "The authors' code at the same scale (H200, gpu profile" in text and "has not been run" not in text
    assert "| E4SRec_4 | authors |" in text and "no speed comparison" in text
    assert "has not been run for this profile (cpu" in _report("cpu")
    assert book.authors_code.for_book(book.start("smoke", quiet=True)) is None


def test_the_figure_says_what_is_behind_it(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    write_csvs(tmp_path, _ndcg(BASE_AUTHORS, BASE_BOOK))
    fig = ac.figure(ac.load("beauty", tmp_path), users=22363)
    ax = fig.axes[0]
    title = ax.get_title()
    for part in ("seeds 0, 1, 2", "22,363 Beauty test users", ac.PROTOCOL,
                 "H200, gpu profile, SmolLM2-135M, same item table"):
        assert part in title, part
    assert "NDCG@10 x 100" in ax.get_ylabel()
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots >= 3 * 2 * len(SEEDS)  # a dot a seed, model and code (plus the mean markers)
    means = {t.get_text() for t in ax.texts}
    assert f"{100 * np.mean(BASE_AUTHORS['SLMRec_4<-8']):.2f}" in means
    gpu = book.start("gpu", quiet=True)
    assert ac.figure_path(gpu).name == "authors_code.png" and ac.figure_path(gpu).parent.name == "gpu"
    assert ac.figure_path(book.start("gpu", "sports", quiet=True)).name == "authors_code-sports.png"


def test_the_committed_benchmark_and_the_readme_agree():
    """The committed H200 CSVs load (3 seeds a side, every model), and the README's table is this
    function's output on them."""
    folder = paths.REPO_ROOT / "results" / "benchmarks"
    if not ac.csv_paths("beauty", folder):
        pytest.skip("the benchmark's CSVs are not in this checkout")
    table = ac.summary(ac.load("beauty", folder))
    assert len(table) == 6 and (table.seeds == 3).all()
    readme = (paths.REPO_ROOT / "README.md").read_text()
    for line in book.markdown_table(ac.formatted(table)).splitlines():
        assert line in readme, line
    assert ac.finding(table) in readme


def _notebook_cell() -> str:
    """The code cell of notebooks/07_report.py that shows the benchmark."""
    import jupytext

    nb = jupytext.read(paths.REPO_ROOT / "notebooks" / "07_report.py")
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "book.authors_code.for_book" in c.source]
    assert len(cells) == 1
    return cells[0]


def test_the_notebook_section_runs_with_and_without_the_benchmark(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    shown = []
    for profile in ("smoke", "gpu"):
        b = book.start(profile, quiet=True)
        exec(_notebook_cell(), {"book": book, "b": b, "display": shown.append})
    assert "has not been run for this profile (smoke" in capsys.readouterr().out and not shown
    write_csvs(paths.results_dir("benchmarks"), _ndcg(BASE_AUTHORS, BASE_BOOK))
    monkeypatch.setattr(ac, "test_users", lambda b: 123)  # the real count needs the data (test below)
    gpu = book.start("gpu", quiet=True)
    exec(_notebook_cell(), {"book": book, "b": gpu, "display": shown.append})
    out = capsys.readouterr().out
    assert "The authors' code at the same scale (" in out and ac.figure_path(gpu).is_file()
    assert len(shown) == 1 and list(shown[0].index) == [(m, c) for m in ac.MODELS for c in ac.CODES]


def test_test_users_are_the_datasets_users(real_data_dir):
    from slmrec_lib.data import load_dataset

    assert ac.test_users(book.start("gpu", quiet=True)) == load_dataset("beauty").n_users
