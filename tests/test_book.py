"""The book package: parameter checks, runs picked by tidy columns, the paper-row mapping, the paper's
average improvement, verdicts with their statistics under both protocols, the report, timing."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from slmrec_lib import book, config, stats, studies, timing
from slmrec_lib.profiles import ProfileError, get_profile

METRICS = list(book.MAIN_METRICS)
SAMPLED = "sampled-50-seed0"
B = book.start("smoke", quiet=True)
P = B.profile
DS = "synthetic"
MODELS = {  # name -> the smoke profile's config of that model for a seed
    "deep": lambda s: studies.e4srec(P, DS, P.depth, s),
    "small": lambda s: studies.e4srec(P, DS, P.small, s),
    "mid": lambda s: studies.e4srec(P, DS, P.mid, s),
    "student": lambda s: studies.slmrec(P, DS, P.small, P.mid, s, variant=""),
    "norm": lambda s: studies.slmrec(P, DS, P.small, P.mid, s, variant=" +D_norm"),
    "full": lambda s: studies.slmrec(P, DS, P.small, P.mid, s),
    "online": lambda s: studies.slmrec(P, DS, P.small, P.mid, s, mode="online"),
    "b1": lambda s: studies.slmrec(P, DS, P.small, P.mid, s, " +D_norm", blocks=1),
    "sasrec": lambda s: studies.baseline(P, DS, "sasrec", s),
    "gru4rec": lambda s: studies.baseline(P, DS, "gru4rec", s),
}


def _rows(values: dict, protocols=(SAMPLED,), metrics=METRICS, users=100) -> pd.DataFrame:
    """Test-stage rows with the tidy columns of real configs: name -> one value a seed (every metric
    alike); under "full" the values are halved."""
    out = []
    for name, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            cfg = MODELS[name](seed)
            base = dict(config.columns(cfg), config_hash=cfg.hash, model=cfg.label, seed=seed, dataset=DS,
                        n_users=users, git_sha="abc1234", stage="test", train_seconds=1.0, steps=10,
                        eval_seconds_per_user=0.01, train_params=10, inference_params=100)
            for protocol in protocols:
                for m in metrics:
                    out.append(dict(base, protocol=protocol, metric=m, value=v if protocol != "full" else v / 2))
    return book.normalized(pd.DataFrame(out))


# ------------------------------------------------------------------------------------------ start
def test_start_defaults_to_the_profiles_first_dataset():
    b = book.start("smoke", None, quiet=True)
    assert b.dataset == "synthetic" and b.backbone == "tiny:12"
    assert "profile smoke, dataset synthetic, backbone tiny:12, 3 seeds" in b.caption("x", "3 seeds")
    assert (b.depth("depth"), b.depth("mid"), b.depth("small"), b.depth(2)) == (12, 8, 4, 2)


def test_start_keeps_the_profile_object_it_is_given():
    prof = get_profile("smoke", seeds=(0, 1, 2))
    b = book.start(prof, quiet=True)
    assert b.profile is prof  # never re-resolved by name: the override reaches the studies
    assert {c.seed for c in book.study_configs(b, "ablation")} == {0, 1, 2}


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


def test_parameter_check_rejects_unknown_names_only():
    book.start("smoke", quiet=True, names={"profile", "dataset", "with_p5", "_i3", "_"})
    with pytest.raises(book.BookError, match=r"unknown notebook parameter\(s\) \['dataste'\].*dataset"):
        book.start("smoke", quiet=True, names={"profile", "dataset", "dataste"})


# ------------------------------------------------------------------------------------------ paper rows
@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_the_paper_row_mapping_is_one_to_one(profile):
    b = book.start(profile, quiet=True)
    names = [n for n in (*book.STUDY_NAMES, "baselines") if n in studies.STUDIES]
    cfgs = [c for n in names for c in studies.study(n, b.profile, b.dataset)]
    cfgs += [d for c in cfgs for d in config.dependencies(c)]
    plays = book.check_one_to_one(b, cfgs)  # raises if two models play one row
    assert plays["E4SRec*"] == f"E4SRec_{b.profile.depth}" and plays["SASRec"] == "SASRec"
    assert plays["SLMRec_4<-8 +D_norm +L_ms"] == f"SLMRec_{b.profile.small}<-{b.profile.mid} +D_norm +L_ms"
    # the same model under two seeds is one model; two settings on one row are an error
    twin = studies.e4srec(b.profile, b.dataset, b.profile.depth, seed=5)
    book.check_one_to_one(b, cfgs + [twin])
    other = studies.slmrec(b.profile, b.dataset, b.profile.small, b.profile.mid, variant="")
    clash = config.columns(other)
    assert book.paper_row(dict(clash, dataset=b.dataset), b) == "SLMRec_4<-8"
    assert book.paper_row(dict(clash, dataset=b.dataset, blocks=2), b) is None  # not the paper's setting


def test_cpu_rebases_the_papers_numbers_on_e4srec_star():
    """cpu has depth = mid = 8: the deepest E4SRec plays E4SRec*, so GRU4Rec's paper value is the
    paper's own -20.26 (it was drawn at -15.26, rebased on E4SRec_8*)."""
    cpu = book.start("cpu", quiet=True)
    cfgs = {"deep": studies.e4srec(cpu.profile, "beauty", 8), "gru": studies.baseline(cpu.profile, "beauty", "gru4rec")}
    rows = book.normalized(pd.DataFrame([dict(config.columns(c), config_hash=c.hash, model=c.label, seed=0,
                                              dataset="beauty", n_users=500, stage="test", protocol="sampled-999-seed0",
                                              metric=m, value=0.1) for c in cfgs.values() for m in METRICS]))
    t = book.main_table(rows, cpu)
    assert t.loc["E4SRec_8", ("paper row", "")] == "E4SRec*"
    assert t.loc["GRU4Rec", ("paper avg improvement %", "")] == pytest.approx(-20.26, abs=0.006)
    assert t.attrs["reference"] == "E4SRec_8 (paper: E4SRec*)"


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
    rows = _rows({"deep": [0.10, 0.12, 0.14], "student": [0.13, 0.15, 0.17], "sasrec": [0.05]})
    rows.loc[rows.kind == "sasrec", "n_users"] = 40  # scored on a user subset
    rows = pd.concat([rows, _rows({"deep": [0.9]}).assign(stage="valid")])  # other stages are ignored
    t = book.main_table(rows, B)
    assert t.loc["E4SRec_12", ("mean", "MRR")] == pytest.approx(12.0)
    assert t.loc["E4SRec_12", ("std", "MRR")] == pytest.approx(2.0)
    assert t.loc["SLMRec_4<-8", ("avg improvement %", "")] == pytest.approx(25.0)
    assert t.loc["SASRec", ("seeds", "")] == 1 and math.isnan(t.loc["SASRec", ("std", "MRR")])
    assert t.loc["SASRec", ("users", "")] == 40 and t.loc["E4SRec_12", ("users", "")] == 100
    assert t.loc["E4SRec_12", ("paper row", "")] == "E4SRec*"
    assert t.loc["SLMRec_4<-8", ("paper avg improvement %", "")] == pytest.approx(-2.55, abs=0.006)
    assert t.loc["SLMRec_4<-8", ("paper Cloth", "HR@1")] == 16.10
    shown = book.formatted(t)
    assert shown.loc["E4SRec_12", ("MRR", "ours")] == "12.00 ± 2.00" and shown.loc["SASRec", ("MRR", "ours")] == "5.00"
    assert shown.loc["E4SRec_12", ("MRR", "paper Cloth / Movie")] == "18.77 / 19.74"


def test_a_side_picks_by_columns_not_by_label():
    rows = _rows({"full": [0.2], "b1": [0.1], "student": [0.1], "norm": [0.1], "online": [0.1]})
    rows["model"] = "same label for all"  # labels are for display only
    g = book.groups(rows)
    assert g.loc[book.FULL.find(rows, B)[0], "blocks"] == 4 and g.loc[book.BLOCKS_1.find(rows, B)[0], "blocks"] == 1
    assert g.loc[book.FULL_ONLINE.find(rows, B)[0], "mode"] == "online"
    assert len(g) == 5 and g.name.is_unique  # shared labels are told apart by the run hash


def test_seed_scores_leave_out_metrics_where_the_reference_scores_zero():
    rows = _rows({"deep": [0.2, 0.4], "sasrec": [0.1]})
    rows.loc[(rows.kind == "sasrec") & (rows.metric == "HR@1"), "value"] = 0.0
    a, r = book.DEEP.find(rows, B)[0], book.SASREC.find(rows, B)[0]
    assert book.seed_scores(rows, a, r, SAMPLED).tolist() == pytest.approx([100.0, 300.0])
    with pytest.raises(book.BookError, match="scores 0 on every metric"):
        book.seed_scores(rows.assign(value=rows.value.where(rows.kind != "sasrec", 0.0)), a, r, SAMPLED)


def test_paper_dataset_checks_flag_only_the_sport_row():
    checks = book.paper_dataset_checks().set_index("dataset")
    assert not checks.loc["Sport", "consistent"]
    assert checks.drop("Sport").consistent.all()


# ------------------------------------------------------------------------------------------ verdicts
def test_verdicts_use_welch_holm_and_both_protocols():
    rows = _rows({"deep": [0.100, 0.102, 0.098], "full": [0.120, 0.121, 0.119], "student": [0.130, 0.131, 0.129],
                  "norm": [0.129, 0.133, 0.128]}, protocols=(SAMPLED, "full"))
    claims = book.judge_claims(rows, B)
    assert set(claims.protocol) == {"sampled 1+50", "full ranking"}
    assert set(claims.test) == {book.claims.SEED_TEST} and set(claims.paired) == {book.NO_RANKS}
    first = claims[(claims.claim == book.CLAIMS[0].text) & (claims.protocol == "sampled 1+50")].iloc[0]
    # the Welch test on per-seed relative changes, recomputed with scipy
    a, b = 100 * (np.array([0.120, 0.121, 0.119]) / 0.1 - 1), 100 * (np.array([0.100, 0.102, 0.098]) / 0.1 - 1)
    ref = sps.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert first.p == pytest.approx(ref.pvalue) and first.effect_pct == pytest.approx(20.0)
    assert first.ci_low < 20 < first.ci_high
    assert list(claims.p_holm) == pytest.approx(list(stats.holm(claims.p.to_numpy())))
    assert first.verdict == book.HOLDS and "+1.49% on average" in first.paper
    by = claims.set_index(["claim", "protocol"]).verdict
    assert by[("both terms together beat D_cos alone", "full ranking")] == book.FAILS
    assert by[("D_norm helps: + D_norm beats D_cos alone", "sampled 1+50")] == book.INCONCLUSIVE
    assert "the LLM recommender beats SASRec" not in set(claims.claim)  # SASRec was not run
    wide = book.side_by_side(claims)
    assert {"sampled 1+50: verdict", "full ranking: verdict", "sampled 1+50: adj. p", "test"} <= set(wide.columns)


def test_one_seed_without_ranks_is_inconclusive():
    claims = book.judge_claims(_rows({"deep": [0.3], "sasrec": [0.1]}), B)
    assert list(claims.verdict) == [book.INCONCLUSIVE] and "needs at least 2 seeds" in claims.detail.iloc[0]


def test_stored_ranks_give_the_paired_bootstrap(tmp_path):
    rows = _rows({"deep": [0.3], "sasrec": [0.1]})
    rng = np.random.default_rng(0)
    for h, kind in rows[["config_hash", "kind"]].drop_duplicates().itertuples(index=False):
        folder = tmp_path / "results" / "smoke" / "runs" / h  # conftest points SLMREC_RESULTS_DIR at tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        ranks = rng.integers(0, 3 if kind == "e4srec" else 40, size=400)  # the deep model ranks far higher
        np.savez(folder / "ranks.npz", **{f"{SAMPLED}__test": ranks})
    from slmrec_lib import paths

    if not (paths.results_dir("smoke") / "runs").is_relative_to(tmp_path):
        pytest.skip("the results folder is not the test's")
    claim = book.judge_claims(rows, B).iloc[0]
    assert claim.test.startswith("paired bootstrap") and "Wilcoxon" in claim.paired
    assert claim.verdict == book.HOLDS and claim.ci_low > 0


def test_protocol_agreement_is_kendalls_tau():
    rows = _rows({"deep": [0.3], "small": [0.2], "sasrec": [0.1]}, protocols=(SAMPLED, "full"))
    flip = rows.protocol == "full"
    rows.loc[flip, "value"] = 1 - rows.loc[flip, "value"]  # full ranking reverses the order
    agree = book.protocol_agreement(rows).iloc[0]
    assert agree.tau == pytest.approx(-1.0) and agree.models == 3
    assert "no full-ranking" in book.protocol_agreement(_rows({"deep": [0.3]})).note.iloc[0]


def test_efficiency_claims_scale_the_papers_figures_to_our_depths():
    rows = _rows({"deep": [0.1], "student": [0.1]}).assign(train_seconds=1.0, steps=10, eval_seconds_per_user=0.01)
    rows["inference_params"] = rows.kind.map({"e4srec": 1000, "slmrec": 300})
    rows["train_params"] = 10

    def timed(student_ms):  # 12 -> 4 layers: 3x fewer, the paper's 32 -> 4 is 8x
        return pd.DataFrame([dict(model=m, layers=k, teacher_layers=t, measure=meas, ms=ms) for m, k, t, ms in
                             (("E4SRec_12", 12, None, 30.0), ("SLMRec_4<-8", 4, 8, student_ms))
                             for meas in timing.MEASURES])

    fast = book.judge_efficiency(rows, B, timed(10.0)).set_index("claim").verdict  # 3.0x: the paper's 8.0x * 3/8
    assert list(fast) == [book.HOLDS, book.HOLDS, book.HOLDS]  # params: 30% <= 13% * 8/3 = 34.7% (+ tolerance)
    assert "[RQ2] the student infers faster" in book.findings(book.judge_efficiency(rows, B, timed(10.0)))
    slow = book.judge_efficiency(rows, B, timed(20.0)).set_index("claim").verdict  # 1.5x
    assert list(slow)[:2] == [book.FAILS, book.FAILS]
    clocks = book.judge_efficiency(rows, B).set_index("claim")  # no benchmark: the runs' own clocks (1.0x)
    assert list(clocks.verdict) == [book.FAILS, book.FAILS, book.HOLDS] and "1.00x" in clocks.ours.iloc[0]
    shared = book.judge_efficiency(rows.assign(runs_per_device=3), B)  # runs that shared a device
    assert list(shared.verdict) == [book.NOT_MEASURED, book.NOT_MEASURED, book.HOLDS]


def test_block_claims_find_their_runs_by_columns():
    rows = _rows({"b1": [0.10, 0.11, 0.09], "full": [0.20, 0.21, 0.19]})
    claims = book.judge_claims(rows, B, rq="RQ5")
    assert list(claims.claim) == ["b = 4 blocks beats b = 1"] and list(claims.verdict) == [book.HOLDS]
    t = book.main_table(rows, B, reference=book.FULL)
    assert t.loc["SLMRec_4<-8 +D_norm blocks=1", ("avg improvement %", "")] == pytest.approx(-50.0)


# ------------------------------------------------------------------------------------------ report
def test_report_files_name_the_test_and_do_not_change_on_a_re_render(tmp_path):
    rows = _rows({"deep": [0.10, 0.12, 0.11], "small": [0.05, 0.07, 0.06], "student": [0.13, 0.15, 0.14]},
                 protocols=(SAMPLED, "full"))
    claims = book.judge_all(rows, B)
    args = (B, book.comparison_table(rows, B), claims, [], rows, book.protocol_agreement(rows))
    csv_path, md_path = book.write_report(*args)
    assert str(tmp_path) in str(csv_path)  # the test's results folder
    text = md_path.read_text()
    assert "Welch" in text and "Holm" in text and "sampled 1+50: verdict" in text and "full ranking: verdict" in text
    assert "Kendall" in text and "git abc1234" in text and "| SLMRec_4<-8 |" in text
    book.write_report(*args)
    assert md_path.read_text() == text  # nothing of the renderer (its git sha, a date) is in it
    assert list(pd.read_csv(csv_path).verdict) == list(claims.verdict)
    other = book.start("smoke", "beauty", quiet=True)  # not the profile's first dataset: its own files
    csv2, md2 = book.write_report(other, args[1], claims)
    assert (csv2.name, md2.name) == ("report-beauty.csv", "report-beauty.md") and "(beauty," in md2.read_text()


def test_markdown_table():
    table = book.markdown_table(pd.DataFrame({"a": [1.234, float("nan")], "b": ["x|y", "z"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | x\\|y |", "|  | z |"]


def test_figures_say_what_is_behind_them():
    import matplotlib

    matplotlib.use("Agg")
    rows = _rows({"deep": [0.3], "sasrec": [0.1], "gru4rec": [0.2]})
    rows.loc[rows.kind == "gru4rec", "n_users"] = 10
    fig = book.figures.metric_bars(rows, B, "x")
    title = fig.axes[0].get_title()
    assert "1 seed" in title and "100 test users (GRU4Rec: 10)" in title
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "no spread" in texts and "few test users" in texts
    lengths = pd.DataFrame({"dataset": "d", "length": list(range(1, 100)) + [5000]})
    hist = book.figures.length_hist(lengths, B)
    assert hist.axes[0].get_xlim()[1] < 200 and "longest 5000" in hist.axes[0].get_title()


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


def test_impossible_block_counts_are_named():
    assert "b = 8 > 4 student layers is impossible" in book.impossible_blocks(book.start("paper", quiet=True))
    assert book.impossible_blocks(book.start("smoke", quiet=True)).startswith("every b in [1, 2, 4] fits")


def test_benchmark_rows_and_cpu_threads_restored(monkeypatch):
    monkeypatch.setattr(timing, "models_to_time", lambda *args: iter([("E4SRec_12", "e4srec", _Counter()),
                                                                       ("SLMRec_4<-8", "slmrec", _Counter())]))
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




# ------------------------------------------------------------------------------------------ ladder and controls
SHUFFLED = f"{SAMPLED}-shuffled"


def _cfg_rows(cfgs: dict, values: dict, protocols=(SAMPLED,), metrics=METRICS, users=100) -> pd.DataFrame:
    """Like `_rows` for any configs: name -> RunConfig (one seed) or list of them (a seed each), and
    name -> {protocol: value} or a value (every protocol alike). The book's columns come from the config."""
    out = []
    for name, cfg_list in cfgs.items():
        for cfg in cfg_list if isinstance(cfg_list, list) else [cfg_list]:
            base = dict(config.columns(cfg), **book.runs.book_columns(cfg), config_hash=cfg.hash, model=cfg.label,
                        seed=cfg.seed, dataset=DS, n_users=users, git_sha="abc1234", stage="test")
            v = values[name]
            for protocol in protocols:
                value = v[protocol] if isinstance(v, dict) else v
                value = value[cfg.seed] if isinstance(value, (list, tuple)) else value
                out += [dict(base, protocol=protocol, metric=m, value=value) for m in metrics]
    return book.normalized(pd.DataFrame(out))


def _ladder_cfgs():
    rung = {r: [studies.sasrec_rung(P, DS, r, s) for s in (0, 1, 2)] for r in studies.RUNGS}
    return dict(ce=rung["ce"], bce=rung["bce"], authors=rung["authors"],
                deep=[studies.e4srec(P, DS, P.depth, s) for s in (0, 1, 2)])


def test_ladder_margin_and_claim_per_rung():
    values = dict(ce=[0.200, 0.202, 0.198], bce=[0.100, 0.101, 0.099], authors=[0.050, 0.051, 0.049],
                  deep=[0.150, 0.151, 0.149])
    rows = _cfg_rows(_ladder_cfgs(), values)
    b = book.Book(P, DS)
    models = book.ladder.ladder_models(rows, b)
    assert list(models[models.part == "SASRec rung"].rung) == ["ce", "bce", "authors"]  # from the columns
    margins = book.ladder.ladder_margins(rows, b).set_index("rung").ndcg10_margin_pct
    assert margins["ce"] == pytest.approx(-25.0) and margins["bce"] == pytest.approx(50.0)
    assert margins["authors"] == pytest.approx(200.0)
    claims = book.judge_claims(rows, b, claims=book.LADDER_CLAIMS)
    llm = claims[claims.claim == book.claims.LLM_BEATS_SASREC.text].set_index("ours")
    assert len(llm) == 3  # one verdict a rung
    assert llm.verdict[llm.index.str.endswith("vs SASRec")].iloc[0] == book.FAILS
    holds = llm[~llm.index.str.endswith("vs SASRec")]
    assert set(holds.verdict) == {book.HOLDS} and holds.effect_pct.min() > 40
    # the rungs the paper's table has no row for are set against the paper's one SASRec, and say so
    assert all("the paper's one SASRec" in p for p in holds.paper)
    assert "the paper's one SASRec" not in llm.paper[llm.index.str.endswith("vs SASRec")].iloc[0]
    # the paper's own claims (CLAIMS) do not report missing ladder sides as "not run"
    rows.attrs["missing"] = [dict(label="x", dataset=DS, seed=0, hash="0")]
    assert book.NOT_RUN not in set(book.judge_claims(rows, b).verdict)
    assert book.NOT_RUN in set(book.judge_claims(rows, b, claims=book.LADDER_CLAIMS).verdict)  # the BCE table runs


def test_bce_calibration_against_the_published_number():
    published = book.ladder.PUBLISHED_BCE["beauty"]["NDCG@10"]
    beauty = book.Book(P, "beauty")
    for factor, within in ((1.05, True), (0.8, False)):
        rows = _cfg_rows(_ladder_cfgs(), dict(ce=0.2, bce=published * factor, authors=0.1, deep=0.15),
                         protocols=(SAMPLED, "full"))
        hr = (rows.kind == "sasrec") & (rows.loss == "bce") & (rows.metric == "HR@10")
        rows.loc[hr, "value"] = book.ladder.PUBLISHED_BCE["beauty"]["HR@10"] * factor  # every published metric
        calib = book.ladder.calibration(rows, beauty).set_index("metric")
        assert calib.ratio["NDCG@10"] == pytest.approx(factor) and bool(calib.within["NDCG@10"]) is within
        assert ("not within 10%" in book.ladder.calibration_text(calib.reset_index(), beauty)) is not within
    assert book.ladder.calibration(rows, book.Book(P, DS)).empty  # no published number for synthetic data


def _control_cfgs() -> dict:
    """name -> the smoke profile's control config (picked by its settings)."""
    out = {}
    for c in studies.depth_controls(P, DS):
        m = c.model
        if m.kind == "sasrec":
            out["sasrec"] = c
        elif m.backbone != P.backbone:
            out["random"] = c
        elif m.params.train_item_table:
            out["trainable"] = c
        elif m.targets == "prefixes":
            out["prefixes"] = c
        else:
            out["pretrained"] = c
    return out


def test_control_runs_are_models_of_their_own():
    cfgs = dict(_control_cfgs(), main=studies.e4srec(P, DS, P.small, 0))
    rows = _cfg_rows(cfgs, {k: 0.1 for k in cfgs}, protocols=(SAMPLED, SHUFFLED))
    assert rows[rows.config_hash == cfgs["main"].hash].group.iloc[0] != \
        rows[rows.config_hash == cfgs["pretrained"].hash].group.iloc[0]
    assert book.E4_SMALL.find(rows, B) == [rows[rows.config_hash == cfgs["main"].hash].group.iloc[0]]
    shown = book.groups(rows).set_index("name")
    assert {"E4SRec_4", "E4SRec_4 (depth control)"} <= set(shown.index)  # one label, told apart for display
    assert bool(shown.control["E4SRec_4 (depth control)"]) and not bool(shown.control["E4SRec_4"])
    sides = book.control_sides(B)
    for name, key in (("pretrained 4", "pretrained"), ("random 4", "random"), ("trainable 4", "trainable"),
                      ("prefixes 4", "prefixes"), ("SASRec", "sasrec")):
        assert sides[name].find(rows, B) == [rows[rows.config_hash == cfgs[key].hash].group.iloc[0]]
    # the shuffled protocol is the order control's, never a protocol of the paper's claims
    assert book.protocols(rows) == [SAMPLED] and book.runs.shuffled_of(SAMPLED, rows) == SHUFFLED
    assert book.runs.protocol_kind(SHUFFLED) == "sampled 1+50, shuffled histories"


def test_control_claims_with_stored_ranks_and_missing_runs(tmp_path):
    from slmrec_lib import paths

    if not (paths.results_dir("smoke") / "runs").is_relative_to(tmp_path):
        pytest.skip("the results folder is not the test's")
    cfgs = _control_cfgs()
    rows = _cfg_rows(cfgs, {k: 0.1 for k in cfgs}, protocols=(SAMPLED, SHUFFLED))
    rng = np.random.default_rng(0)
    high = dict(pretrained=3, random=3, trainable=40, prefixes=3, sasrec=3)  # ranks below `high`: trainable far worse
    for name, cfg in cfgs.items():
        folder = paths.results_dir("smoke") / "runs" / cfg.hash
        folder.mkdir(parents=True, exist_ok=True)
        plain = rng.integers(0, high[name], size=300)
        shuffled = plain if name == "random" else plain + 20  # the random stack ignores order
        np.savez(folder / "ranks.npz", **{f"{SAMPLED}__test": plain, f"{SHUFFLED}__test": shuffled})
    claims = book.judge_claims(rows, B, claims=book.control_claims(B))
    by = claims.set_index("ours").verdict
    assert set(claims.test) == {"paired bootstrap over seeds x users (NDCG@10)"}
    assert by["E4SRec_4 +trainable-table vs E4SRec_4"] == book.FAILS
    order = claims[claims.rq == "control: order"].set_index("ours")
    assert order.verdict["SASRec: plain vs shuffled"] == book.HOLDS
    assert order.verdict[order.index.str.contains("random")].iloc[0] == book.INCONCLUSIVE  # same ranks: no effect
    assert order.effect_pct[order.index.str.contains("random")].iloc[0] == pytest.approx(0.0)
    assert list(claims.p_holm) == pytest.approx(list(stats.holm(claims.p.to_numpy())), nan_ok=True)
    table = book.ladder.control_table(rows, B)
    assert table.loc["SASRec", "sampled 1+50 order drop %"] == pytest.approx(0.0)  # the rows' values are equal
    # a control whose run is missing on this machine is "not run", not silently dropped
    part = rows[rows.config_hash != cfgs["random"].hash].copy()
    part.attrs["missing"] = [dict(label=cfgs["random"].label, dataset=DS, seed=0, hash=cfgs["random"].hash)]
    again = book.judge_claims(part, B, claims=book.control_claims(B))
    gone = again[again.verdict == book.NOT_RUN]
    assert set(gone.rq) == {"control: pretraining", "control: order"}
    assert "NOT RUN" in book.findings(again) and "not run" in book.side_by_side(again).to_string()


def test_layer_distance_heat_map_data_from_a_hand_made_csv(tmp_path):
    path = tmp_path / "layer_angular_distance.csv"
    n_layers = 4
    frame = pd.DataFrame([dict(layer=l, shift=n, angular_distance=0.1 * n + 0.01 * l, users=7, normed=l + n == n_layers)
                          for n in range(1, n_layers + 1) for l in range(n_layers + 1 - n)])
    frame.to_csv(path, index=False)
    read = book.ladder.read_layer_distances(path).assign(model="E4SRec_4", setting="pretrained")
    mat = book.ladder.distance_matrix(read)
    assert mat.shape == (4, 4) and mat.loc[2, 1] == pytest.approx(0.21) and math.isnan(mat.loc[4, 1])
    red = book.ladder.redundancy(read, 2).iloc[0]
    assert (red.first_layer, red.min_distance, red.max_distance, red.users) == (0, pytest.approx(0.2),
                                                                                 pytest.approx(0.22), 7)
    bad = tmp_path / "bad.csv"
    pd.DataFrame(dict(layer=[0], distance=[0.1])).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="lack .*angular_distance"):
        book.ladder.read_layer_distances(bad)
    fig = book.figures.layer_distances(read, B)
    assert "7 test users" in fig._suptitle.get_text()


def test_control_table_over_seeds_averages_each_seeds_order_drop():
    sasrec = _control_cfgs()["sasrec"]
    seeds = [dataclasses.replace(sasrec, seed=s) for s in (0, 1)]
    rows = _cfg_rows({"sasrec": seeds}, {"sasrec": {SAMPLED: [0.2, 0.4], SHUFFLED: [0.1, 0.3]}},
                     protocols=(SAMPLED, SHUFFLED))
    row = book.ladder.control_table(rows, B).loc["SASRec"]
    plain, drop = "sampled 1+50 NDCG@10", "sampled 1+50 order drop %"
    assert row[plain] == pytest.approx(30.0) and row[f"{plain} sd"] == pytest.approx(np.std([20, 40], ddof=1))
    assert row["sampled 1+50, shuffled histories NDCG@10"] == pytest.approx(20.0)
    assert row[drop] == pytest.approx(37.5)  # (50% + 25%) / 2, not 1 - 20 / 30
    assert row.seeds == 2
    assert "30.00 ± 14.14" in book.ladder.controls_markdown(rows, B)
    single = book.ladder.control_table(rows[rows.seed == 0], B).loc["SASRec"]
    assert single.seeds == 1 and math.isnan(single[f"{plain} sd"]) and single[drop] == pytest.approx(50.0)


def test_a_reference_that_scored_zero_ndcg_is_said_not_a_crash():
    values = dict(ce=[0.200, 0.202, 0.198], bce=[0.100, 0.101, 0.099], authors=[0.050, 0.051, 0.049],
                  deep=[0.150, 0.151, 0.149])
    rows = _cfg_rows(_ladder_cfgs(), values)
    authors = (rows.kind == "sasrec") & (rows.targets == "last") & (rows.metric == "NDCG@10")
    assert authors.any()
    rows.loc[authors, "value"] = 0.0  # e.g. a model scored on a handful of users that all missed
    claims = book.judge_claims(rows, book.Book(P, DS), claims=book.LADDER_CLAIMS)
    zero = claims[claims.ours.str.contains("targets=last")]
    assert len(zero) and all(t.startswith("no relative NDCG@10 change: mean(b) = 0") for t in zero.ndcg10)
    assert zero.verdict.notna().all()
