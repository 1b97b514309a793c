"""The notebooks' helpers: parameter checks, the paper's average improvement, verdicts, timing."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from slmrec_lib import book, timing
from slmrec_lib.profiles import ProfileError

METRICS = list(book.MAIN_METRICS)
SAMPLED = "sampled-50-seed0"


def _rows(values: dict[str, list[float]], metrics=METRICS) -> pd.DataFrame:
    """Test-stage sampled rows: model -> one value a seed, the same for every metric."""
    out = []
    for model, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            for m in metrics:
                out.append(dict(model=model, seed=seed, stage="test", protocol=SAMPLED, metric=m, value=v,
                                config_hash=f"{model}-{seed}", dataset="synthetic", n_users=100))
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------ start
def test_start_defaults_to_the_profiles_first_dataset():
    b = book.start("smoke", None, quiet=True)
    assert b.dataset == "synthetic" and b.backbone == "tiny:12"
    assert "profile smoke, dataset synthetic, backbone tiny:12" in b.caption("x")
    assert b.label("SLMRec_{small}<-{mid}") == "SLMRec_4<-8"


def test_start_unknown_profile_names_the_known_ones():
    with pytest.raises(ProfileError, match="known profiles: smoke, cpu, gpu, paper"):
        book.start("laptop")


def test_start_unknown_dataset_names_the_known_ones():
    with pytest.raises(book.BookError, match=r"unknown dataset 'beuaty'.*runs beauty.*known datasets: .*sports"):
        book.start("cpu", "beuaty", quiet=True)


def test_start_accepts_a_named_dataset_and_a_file(tmp_path):
    assert book.start("cpu", "sports", quiet=True).dataset == "sports"
    f = tmp_path / "seqs.txt"
    f.write_text("1 1 2 3\n")
    assert book.start("smoke", str(f), quiet=True).slug == "seqs.txt"


# ------------------------------------------------------------------------------------------ tables
def test_average_improvement_on_a_hand_built_frame():
    long = pd.DataFrame(dict(model=["A", "A", "R", "R"], metric=["HR@10", "MRR", "HR@10", "MRR"],
                             value=[0.2, 0.1, 0.1, 0.2]))
    avg = book.average_improvement(long, "R")
    assert avg["A"] == pytest.approx((100.0 - 50.0) / 2)  # +100% on HR@10, -50% on MRR
    assert avg["R"] == 0.0
    with pytest.raises(book.BookError, match="reference 'E4SRec'"):
        book.average_improvement(long, "E4SRec")


def test_average_improvement_reproduces_the_papers_column():
    """Mean over both datasets and all reported metrics, against E4SRec* (Open-P5 lacks MRR)."""
    paper = book.paper("main_table").drop_duplicates("method").set_index("method")["avg_improvement_pct"]
    ours = book.average_improvement(book.paper_long(), "E4SRec*", model_col="method")
    assert ours.round(2).to_dict() == pytest.approx(paper.to_dict(), abs=0.006)


def test_main_table_means_stds_and_improvement():
    rows = _rows({"E4SRec_12": [0.10, 0.12, 0.14], "SLMRec_4<-8": [0.13, 0.15, 0.17], "Popularity": [0.05]})
    rows.loc[rows.model == "Popularity", "n_users"] = 40  # scored on a user subset
    rows = pd.concat([rows, _rows({"E4SRec_12": [0.9]}).assign(stage="valid")])  # other stages are ignored
    t = book.main_table(rows, book.start("smoke", quiet=True))
    assert t.loc["E4SRec_12", ("mean", "MRR")] == pytest.approx(12.0)
    assert t.loc["E4SRec_12", ("std", "MRR")] == pytest.approx(2.0)
    assert t.loc["SLMRec_4<-8", ("avg improvement %", "")] == pytest.approx(25.0)
    assert t.loc["Popularity", ("seeds", "")] == 1 and math.isnan(t.loc["Popularity", ("std", "MRR")])
    assert t.loc["Popularity", ("users", "")] == 40 and t.loc["E4SRec_12", ("users", "")] == 100
    assert t.loc["E4SRec_12", ("paper row", "")] == "E4SRec*"
    assert t.loc["SLMRec_4<-8", ("paper avg improvement %", "")] == pytest.approx(-2.55, abs=0.006)
    assert t.loc["SLMRec_4<-8", ("paper Cloth", "HR@1")] == 16.10
    shown = book.formatted(t)
    assert shown.loc["E4SRec_12", ("MRR", "ours")] == "12.00 ± 2.00"
    assert shown.loc["E4SRec_12", ("MRR", "paper Cloth / Movie")] == "18.77 / 19.74"


def test_seed_scores_leave_out_metrics_where_the_reference_scores_zero():
    rows = _rows({"E4SRec_12": [0.2, 0.4], "P5": [0.1]})
    rows.loc[(rows.model == "P5") & (rows.metric == "HR@1"), "value"] = 0.0
    scores = book.seed_scores(rows, "E4SRec_12", "P5")  # HR@1 (+inf%) left out; +100% and +300% elsewhere
    assert scores.tolist() == pytest.approx([100.0, 300.0])
    with pytest.raises(book.BookError, match="scores 0 on every metric"):
        book.seed_scores(rows.assign(value=rows.value.where(rows.model != "P5", 0.0)), "E4SRec_12", "P5")


def test_paper_dataset_checks_flag_only_the_sport_row():
    checks = book.paper_dataset_checks().set_index("dataset")
    assert not checks.loc["Sport", "consistent"]
    assert checks.drop("Sport").consistent.all()


# ------------------------------------------------------------------------------------------ verdicts
def test_verdict_rules():
    one = book.verdict([0.5], [0.1, 0.2, 0.3])
    assert one.result == book.INCONCLUSIVE and math.isnan(one.se)
    a, b = [1.0, 1.2, 1.4], [0.0, 0.2, 0.4]  # std 0.2 each: se = sqrt(2 * 0.04 / 3) = 0.163
    v = book.verdict(a, b)
    assert v.result == book.HOLDS and v.diff == pytest.approx(1.0) and v.se == pytest.approx(math.sqrt(0.08 / 3))
    assert book.verdict(b, a).result == book.FAILS
    assert book.verdict([1.0, 1.2, 1.4], [0.9, 1.1, 1.3]).result == book.INCONCLUSIVE  # 0.1 < 2 se


def test_judge_claims_decides_from_the_seed_spread():
    full = "SLMRec_4<-8 +D_norm +L_ms"
    rows = _rows({"E4SRec_12": [0.100, 0.102, 0.098], full: [0.120, 0.121, 0.119],
                  "SLMRec_4<-8": [0.130, 0.131, 0.129], "SLMRec_4<-8 +D_norm": [0.129, 0.133, 0.128]})
    claims = book.judge_claims(rows, book.start("smoke", quiet=True)).set_index("claim")
    assert claims.verdict[book.CLAIMS[0].text] == book.HOLDS  # student above E4SRec*
    assert "+1.49% on average" in claims.paper[book.CLAIMS[0].text]  # the paper's number, computed
    assert claims.verdict["both terms together beat D_cos alone"] == book.FAILS
    assert claims.verdict["D_norm helps: + D_norm beats D_cos alone"] == book.INCONCLUSIVE
    assert "the LLM recommender beats SASRec" not in claims.index  # SASRec was not run


def test_efficiency_claims_scale_the_papers_figures_to_our_depths():
    b = book.start("smoke", quiet=True)  # 12 -> 4 layers: 3x fewer, the paper's 32 -> 4 is 8x
    rows = _rows({"E4SRec_12": [0.1], "SLMRec_4<-8": [0.1]}).assign(
        train_seconds=1.0, steps=10, eval_seconds_per_user=0.01)
    rows["inference_params"] = rows.model.map({"E4SRec_12": 1000, "SLMRec_4<-8": 300})
    rows["train_params"] = 10

    def timed(student_ms):
        return pd.DataFrame([dict(model=m, layers=k, measure=meas, ms=ms) for m, k, ms in
                             (("E4SRec_12", 12, 30.0), ("SLMRec_4<-8", 4, student_ms))
                             for meas in timing.MEASURES])

    fast = book.judge_efficiency(rows, b, timed(10.0)).set_index("claim").verdict  # 3.0x: the paper's 8.0x * 3/8
    assert list(fast) == [book.HOLDS, book.HOLDS, book.HOLDS]  # params: 30% <= 13% * 8/3 = 34.7% (+ tolerance)
    slow = book.judge_efficiency(rows, b, timed(20.0)).set_index("claim").verdict  # 1.5x
    assert list(slow)[:2] == [book.FAILS, book.FAILS]
    # no benchmark: the runs' own clocks (E4SRec and student equally fast here: 1.0x) ...
    clocks = book.judge_efficiency(rows, b).set_index("claim")
    assert list(clocks.verdict) == [book.FAILS, book.FAILS, book.HOLDS] and "1.00x" in clocks.ours.iloc[0]
    # ... unless the runs shared their device with other runs, or the profile trains on a GPU
    gpu_rows = rows.assign(model=rows.model.replace({"E4SRec_12": "E4SRec_30"}))  # the gpu profile's labels
    for shared_rows, bk in ((rows.assign(runs_per_device=3), b), (gpu_rows, book.start("gpu", quiet=True))):
        shared = book.judge_efficiency(shared_rows, bk)
        assert list(shared.verdict) == [book.NOT_MEASURED, book.NOT_MEASURED, book.HOLDS if bk is b else book.FAILS]


def test_report_files(tmp_path):
    b = book.start("smoke", quiet=True)
    rows = _rows({"E4SRec_12": [0.10, 0.12], "SLMRec_4<-8": [0.13, 0.15]})
    claims = book.judge_claims(rows, b)
    csv_path, md_path = book.write_report(b, book.comparison_table(rows, b), claims)
    assert csv_path.parent == md_path.parent and str(tmp_path) in str(csv_path)  # the test's results folder
    assert list(pd.read_csv(csv_path).verdict) == list(claims.verdict)
    text = md_path.read_text()
    assert "| SLMRec_4<-8 |" in text and "E4SRec*" in text and "profile" in text
    other = book.start("smoke", "beauty", quiet=True)  # not the profile's first dataset: its own files
    csv2, md2 = book.write_report(other, book.comparison_table(rows, other), claims)
    assert (csv2.name, md2.name) == ("report-beauty.csv", "report-beauty.md")
    assert md_path.read_text() == text and "(beauty," in md2.read_text()


def test_markdown_table():
    table = book.markdown_table(pd.DataFrame({"a": [1.234, float("nan")], "b": ["x|y", "z"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | x\\|y |", "|  | z |"]


# ------------------------------------------------------------------------------------------ timing
class _Counter(torch.nn.Module):
    """A model whose calls are counted and whose one weight moves when trained."""

    max_len = 3

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.scored = 0

    def score_all(self, input):
        self.scored += len(input)
        return input.float() * self.w

    def forward(self, batch):
        return (self.w * batch["input"].float()).sum(), {}


def test_timing_warms_up_and_repeats():
    model, cfg = _Counter(), timing.TimingConfig(users=6, batch_size=4, warmup=2, repeats=3)
    ms = timing.inference_ms_per_user(model, torch.ones(6, 3, dtype=torch.long), cfg)
    assert len(ms) == 3 and all(v > 0 for v in ms)
    assert model.scored == 6 * (2 + 3)  # every user, on every warm-up and timed call
    before = model.w.item()
    steps = timing.train_ms_per_step(model, {"input": torch.ones(2, 3, dtype=torch.long)}, cfg)
    assert len(steps) == 3 and model.w.item() != before


def test_timing_summary_speedups():
    frame = pd.DataFrame([dict(model=m, layers=k, measure=meas, repeat=r, ms=ms * (1 + 0.1 * r))
                          for m, k, ms in (("E4SRec_8", 8, 40.0), ("E4SRec_4", 4, 20.0), ("SLMRec_4<-8", 4, 25.0))
                          for meas in timing.MEASURES for r in range(3)])
    s = timing.summary(frame).set_index("model")
    assert s.loc["E4SRec_8", "inference_ms_per_user"] == pytest.approx(44.0)  # median of 40, 44, 48
    assert s.loc["E4SRec_4", "inference_speedup"] == pytest.approx(2.0)
    assert s.loc["SLMRec_4<-8", "train_speedup"] == pytest.approx(1.6)


def test_timing_is_read_back_not_measured_twice(monkeypatch):
    calls = []

    def fake(profile, dataset, cfg):
        calls.append(dataset)
        return pd.DataFrame([dict(profile=profile, dataset=dataset, model="E4SRec_12", layers=12,
                                  measure=m, repeat=0, ms=1.0, settings=cfg.hash) for m in timing.MEASURES])

    monkeypatch.setattr(timing, "benchmark", fake)
    first = timing.load_or_measure("smoke")
    again = timing.load_or_measure("smoke")
    assert calls == ["synthetic"] and len(again) == len(first) == 2
    timing.load_or_measure("smoke", force=True)
    assert calls == ["synthetic", "synthetic"] and len(timing.load("smoke")) == 2  # replaced, not appended


def test_block_claims_find_their_runs_whatever_the_loss_terms():
    rows = _rows({"SLMRec_4<-8 +D_norm blocks=1": [0.10, 0.11, 0.09],  # b = 1 cannot carry L_ms
                  "SLMRec_4<-8 +D_norm +L_ms blocks=4": [0.20, 0.21, 0.19]})
    b = book.start("smoke", quiet=True)
    claims = book.judge_claims(rows, b, rq="RQ5")
    assert list(claims.claim) == ["b = 4 blocks beats b = 1"] and list(claims.verdict) == [book.HOLDS]
    assert book.find_label("SLMRec_4<-8 blocks=2", set(rows.model)) is None
    t = book.main_table(rows, b, reference="SLMRec_{small}<-{mid} blocks=4")
    assert t.loc["SLMRec_4<-8 +D_norm blocks=1", ("avg improvement %", "")] == pytest.approx(-50.0)


def test_impossible_block_counts_are_named():
    assert "b = 8 > 4 student layers is impossible" in book.impossible_blocks(book.start("paper", quiet=True))
    assert book.impossible_blocks(book.start("smoke", quiet=True)).startswith("every b in [1, 2, 4] fits")


def test_benchmark_rows_and_cpu_threads_restored(monkeypatch):
    monkeypatch.setattr(timing, "models_to_time", lambda prof, n_items: iter([("E4SRec_12", _Counter()),
                                                                              ("SLMRec_4<-8", _Counter())]))
    before = torch.get_num_threads()
    cfg = timing.TimingConfig(users=5, batch_size=2, train_batch_size=3, warmup=1, repeats=2, cpu_threads=1)
    frame = timing.benchmark("smoke", cfg=cfg, progress=False)
    assert torch.get_num_threads() == before
    assert len(frame) == 2 * len(timing.MEASURES) * 2 and set(frame.threads) == {1}
    assert set(frame.layers) == {12, 4} and set(frame.users) == {5} and set(frame.settings) == {cfg.hash}


def test_timed_warms_up_each_then_interleaves_repeats():
    seen = []
    out = timing.timed({"a": lambda: seen.append("a"), "b": lambda: seen.append("b")}, torch.device("cpu"), 1, 2)
    assert seen == ["a", "b", "a", "b", "a", "b"] and [len(v) for v in out.values()] == [2, 2]


def test_readme_tables_show_mean_and_spread_in_the_studies_order():
    from slmrec_lib import tables

    order = tables.model_order("smoke", "synthetic")
    assert order[:5] == ["Popularity", "GRU4Rec", "BERT4Rec", "SASRec", "SASRec item table"]
    e4 = [m for m in order if m.startswith("E4SRec_")]
    assert e4 == sorted(e4, key=lambda m: int(m.split("_")[1]))
    rows = pd.DataFrame([dict(model=m, seed=s, stage=st, protocol=p, metric=k, value=v, n_users=n)
                         for m, vals, n in (("SASRec", (0.10, 0.20), 900), ("E4SRec_4", (0.30,), 50))
                         for s, v in enumerate(vals) for st in ("valid", "test")
                         for p in ("sampled-999-seed0", "full") for k in ("HR@1", "HR@10", "NDCG@10", "MRR")])
    lines = tables.markdown(rows, order).splitlines()
    assert lines[2].startswith("| SASRec | 2 | 900 | 15.00 ± 7.07 |")
    assert lines[3].startswith("| E4SRec_4 | 1 | 50 | 30.00 |")
