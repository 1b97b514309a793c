"""book.efficiency: RQ2 at Llama-2-7B's shape from the committed CSVs. Known ratios and verdicts on a
synthetic pair of measurements, the teacher-cache target, the reference comparison, per-run estimates,
the missing-file messages, the report's section, the notebook's cells, the figure, and the README's
numbers as this module's output on the committed H200 CSVs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slmrec_lib import book, paths
from slmrec_lib.book import efficiency as eff

# ms per model and measure (inference ms a user, train ms a step); the student twice
MS = {("E4SRec_32", None): (1.6, 320.0), ("E4SRec_8", None): (0.4, 80.0), ("E4SRec_4", None): (0.2, 40.0),
      ("SLMRec_4<-8", False): (0.2, 100.0), ("SLMRec_4<-8", True): (0.2, 44.0)}
PARAMS = {"E4SRec_32": (1000, 30), "E4SRec_8": (300, 9), "E4SRec_4": (130, 5), "SLMRec_4<-8": (130, 7)}


def _rows(cached_train: float = 44.0, prepare_s: float = 2.0) -> list[dict]:
    """One measurement: three repeats a (model, measure) at 0.9x, 1x and 1.2x the value (median: the value)."""
    out = []
    for (model, cache), (inf, train) in MS.items():
        train = cached_train if cache else train
        student = model.startswith("SLMRec")
        for measure, value in (("inference_ms_per_user", inf), ("train_ms_per_step", train)):
            for i, f in enumerate((0.9, 1.0, 1.2)):
                out.append(dict(profile="gpu", dataset="beauty", backbone="llama2-7b-shape", scale="paper-shape",
                                model=model, kind="slmrec" if student else "e4srec",
                                layers=4 if student else int(model.split("_")[1]),
                                teacher_layers=8.0 if student else None, teacher_cache=cache, measure=measure,
                                repeat=i, ms=f * value, users=768, batch_size=256, train_batch_size=32,
                                inference_params=PARAMS[model][0], trainable_params=PARAMS[model][1],
                                weights_dtype="bfloat16", cache_rows=1000 if cache else None,
                                prepare_s=prepare_s if cache else None, peak_gpu_gb=40.0, device="NVIDIA H200"))
    return out


def write_measurements(folder, second_cached: float = 50.0):
    """The first measurement with the cached student at 44 ms, the repeat at `second_cached` ms."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(_rows(44.0, 2.0)).to_csv(folder / eff.MEASUREMENTS["first"], index=False)
    pd.DataFrame(_rows(second_cached, 1.0)).to_csv(folder / eff.MEASUREMENTS["repeat"], index=False)


def test_ratios_and_verdicts_from_known_medians(tmp_path):
    write_measurements(tmp_path)
    frame = eff.load_paper_shape(where=tmp_path)
    assert set(frame.measurement) == {"first", "repeat"}
    r = eff.ratios(frame)
    assert list(r.index) == ["first", "repeat", "pooled"]
    assert r.inference_speedup.tolist() == pytest.approx([8.0] * 3)
    assert r.train_speedup_live.tolist() == pytest.approx([3.2] * 3)
    assert r.layer_ratio.tolist() == pytest.approx([8.0] * 3)
    assert r.loc["first", "train_speedup_cache"] == pytest.approx(320 / 44)
    assert r.loc["repeat", "train_speedup_cache"] == pytest.approx(320 / 50)
    pooled_cached = pd.Series([f * v for v in (44.0, 50.0) for f in (0.9, 1.0, 1.2)]).median()
    assert r.loc["pooled", "train_speedup_cache"] == pytest.approx(320 / pooled_cached)
    assert r.loc["first", "cache_share"] == pytest.approx(320 / 44 / 8)  # 0.909: the target is met
    assert r.cache_target_met.tolist() == [True, False, False]
    assert r.params_share.tolist() == pytest.approx([0.13] * 3)

    v = eff.judge_paper_shape(frame).set_index("claim").verdict
    assert v["the student infers faster than E4SRec* (paper: 8.0x)"] == book.HOLDS  # 8.0x
    assert v["the student trains faster than E4SRec* (paper: 6.6x) (live teacher)"] == book.FAILS  # 3.2x < 5.28x
    assert v["the student trains faster than E4SRec* (paper: 6.6x) (teacher-state cache)"] == book.HOLDS  # 6.8x
    assert v["the student uses a small share of E4SRec*'s parameters (paper: 13%)"] == book.HOLDS
    shown = eff.judge_paper_shape(frame).set_index("claim").ours
    assert shown.iloc[0] == "8.00x (first 8.00x, repeat 8.00x)"

    text = eff.cache_target_text(frame)
    assert "met in 1 of 2 measurements" in text and "first: 7.27x of a 8.00x layer ratio = 91% (met)" in text
    assert "repeat: 6.40x of a 8.00x layer ratio = 80% (not met)" in text
    write_measurements(tmp_path / "slow", second_cached=80.0)  # pooled median (52.8 + 72) / 2 = 62.4 ms: 5.13x
    slow = eff.judge_paper_shape(eff.load_paper_shape(where=tmp_path / "slow")).set_index("claim")
    assert slow.verdict["the student trains faster than E4SRec* (paper: 6.6x) (teacher-state cache)"] == book.FAILS
    write_measurements(tmp_path / "fast", second_cached=40.0)
    assert "met in every measurement" in eff.cache_target_text(eff.load_paper_shape(where=tmp_path / "fast"))


def test_table_reference_and_run_estimates(tmp_path):
    write_measurements(tmp_path)
    frame = eff.load_paper_shape(where=tmp_path)
    table = eff.paper_shape_table(frame).set_index("model")
    assert list(table.index) == ["E4SRec_32", "E4SRec_8", "E4SRec_4", "SLMRec_4<-8 (live teacher)",
                                 "SLMRec_4<-8 (teacher cache)"]
    assert table.loc["E4SRec_32", "inference ms / 256 users"] == pytest.approx(256 * 1.6)
    assert table.loc["E4SRec_8", "train speed-up"] == pytest.approx(4.0)
    assert table.loc["SLMRec_4<-8 (teacher cache)", "train ms / step (repeat)"] == pytest.approx(50.0)
    assert table.loc["E4SRec_32", "inference params (B)"] == pytest.approx(1e-6)
    shown = eff.formatted_paper_shape(eff.paper_shape_table(frame)).set_index("model")
    assert shown.loc["SLMRec_4<-8 (teacher cache)", "train ms / step (first / repeat (pooled))"] == "44.0 / 50.0 (47.5)"  # pooled: median of 39.6, 44, 45, 50, 52.8, 60

    cmp = eff.reference_comparison(frame).set_index(["quantity", "model"])
    assert cmp.loc[("inference ms / 256 users", "E4SRec_4"), "ratio"] == pytest.approx(256 * 0.2 / 118.6)
    assert cmp.loc[("train ms / step", "SLMRec_4<-8"), "book"] == pytest.approx(100.0)  # the live teacher's
    text = eff.reference_text(frame)
    assert "share_prefix" in text and "(E4SRec_32 / E4SRec_4: 8.00x here, 7.97x there)" in text

    est = eff.run_estimates(frame, epochs={"e4srec": 3, "slmrec": 5}, datasets={"X": 320}).set_index("model")
    assert est.loc["E4SRec_32", "steps"] == 30  # 3 epochs x ceil(320 / 32)
    assert est.loc["E4SRec_32", "hours"] == pytest.approx(30 * 0.320 / 3600)
    prepare_per_row = pd.Series([2.0 / 1000, 1.0 / 1000]).median()
    cached = est.loc["SLMRec_4<-8 (teacher cache)"]
    assert cached.prepare_hours == pytest.approx(prepare_per_row * 320 / 3600)
    assert cached.hours == pytest.approx((50 * 0.0475 + prepare_per_row * 320) / 3600)
    assert cached["run speed-up, equal epochs"] == pytest.approx(50 * 0.320 / (50 * 0.0475 + prepare_per_row * 320))
    assert est.loc["SLMRec_4<-8 (live teacher)", "run speed-up"] == pytest.approx(30 * 0.32 / (50 * 0.1))
    assert "E4SRec_8" not in est.index


def test_missing_files_name_the_commands(tmp_path):
    with pytest.raises(eff.EfficiencyFilesMissing) as err:
        eff.load_paper_shape(where=tmp_path)
    assert str(tmp_path / eff.MEASUREMENTS["first"]) in str(err.value) and eff.TIMING_COMMAND in str(err.value)
    with pytest.raises(eff.EfficiencyFilesMissing, match="bench_paper_profile.py"):
        eff.load_paper_profile(where=tmp_path)
    cpu = book.start("cpu", quiet=True)
    assert eff.for_book(cpu) is None
    text = eff.missing_text(cpu)
    assert "profile 'cpu'" in text and eff.TIMING_COMMAND in text and eff.PROFILE_COMMAND in text
    assert eff.load_optional(eff.TEACHER_CACHE, "cpu") is None
    assert eff.verdicts(None, cpu, None).empty


def _report(profile: str) -> str:
    b = book.start(profile, quiet=True)
    _, md_path = book.write_report(b, None, pd.DataFrame({"verdict": pd.Series([], dtype=str)}))
    return md_path.read_text()


def test_the_report_section_is_the_verdicts_or_the_command():
    text = _report("cpu")
    assert "### Efficiency at Llama-2-7B's shape" in text and eff.TIMING_COMMAND in text
    write_measurements(paths.results_dir("gpu"))
    text = _report("gpu")
    assert "At Llama-2-7B's shape the student infers 8.00x faster" in text
    assert "| RQ2 | Llama-2-7B shape | the student trains faster than E4SRec* (paper: 6.6x) (live teacher) |" in text
    assert "Teacher-cache target" in text and "No paper-shape measurement" not in text


def _notebook_cells() -> list[str]:
    import jupytext

    nb = jupytext.read(paths.REPO_ROOT / "notebooks" / "03_efficiency.py")
    return [c.source for c in nb.cells if c.cell_type == "code" and "book.efficiency." in c.source
            and "study_rows" not in c.source]


def test_the_notebook_cells_run_with_and_without_the_measurements(capsys):
    import matplotlib

    matplotlib.use("Agg")
    cells = _notebook_cells()
    assert len(cells) >= 5
    shown = []
    for profile in ("cpu", "gpu"):
        if profile == "gpu":
            write_measurements(paths.results_dir("gpu"))
        b = book.start(profile, quiet=True)
        scope = {"book": book, "b": b, "display": shown.append, "rows": pd.DataFrame(), "timed": pd.DataFrame()}
        for cell in cells:
            exec(cell, scope)
        out = capsys.readouterr().out
        if profile == "cpu":
            assert "No paper-shape measurement for profile 'cpu'" in out and "bench_paper_profile.py" in out
        else:
            assert "At Llama-2-7B's shape the student infers 8.00x" in out and "Per run (Clothing" in out
            assert eff.figure_path(b).is_file() and eff.figure_path(b).name == "efficiency_paper_shape.png"
            verdicts = shown[-1]
            assert set(verdicts.scale) == {"Llama-2-7B shape"} and len(verdicts) == 4


def test_the_figure_says_what_is_behind_it(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    write_measurements(tmp_path)
    fig = eff.figure(eff.load_paper_shape(where=tmp_path))
    title = fig._suptitle.get_text()
    for part in ("Llama-2-7B's shape", "random bf16 weights", "NVIDIA H200", "2 measurements x 3 repeats"):
        assert part in title, part
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels == ["inference speed-up over E4SRec_32 (x, median of repeats)",
                      "training step speed-up over E4SRec_32 (x, median of repeats)"]
    texts = {t.get_text() for t in fig.axes[1].texts}
    assert "3.20x (100 ms a step of 32 rows)" in texts
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert "paper (SLMRec_4<-8 vs E4SRec*): 8.0x (inference) / 6.6x (training)" in legend  # the paper's two figures


def test_the_committed_measurements_and_the_readme_agree():
    """The README's efficiency section is this module's output on the committed H200 CSVs."""
    folder = paths.REPO_ROOT / "results" / "gpu"
    if not (folder / eff.MEASUREMENTS["first"]).exists() or not (folder / eff.PROFILE_RUN).exists():
        pytest.skip("the committed paper-shape CSVs are not in this checkout")
    frame = eff.load_paper_shape(where=folder)
    assert set(frame.measurement) == {"first", "repeat"} and (frame.backbone == "llama2-7b-shape").all()
    runs, hours = eff.load_paper_profile(where=folder)
    readme = (paths.REPO_ROOT / "README.md").read_text()
    tables = (eff.formatted_paper_shape(eff.paper_shape_table(frame)), eff.paper_profile_table(runs),
              eff.hours_table(hours), eff.formatted_run_estimates(eff.run_estimates(frame)),
              eff.judge_paper_shape(frame)[["claim", "ours", "paper", "verdict"]],
              eff.cache_smollm2_verdict(eff.load_optional(eff.TEACHER_CACHE, where=folder))[
                  ["claim", "ours", "paper", "verdict"]])
    for table in tables:
        for line in book.markdown_table(table).splitlines():
            assert line in readme, line
    est = eff.run_estimates(frame)
    for text in (eff.finding(frame), eff.cache_target_text(frame), eff.reference_text(frame),
                 eff.run_text(est, frame), eff.hardware_text(runs, hours)):
        assert text in readme, text
    assert not math.isnan(eff.ratios(frame).loc["pooled", "cache_share"])


def test_the_smollm2_cache_verdict_scales_the_papers_figure_to_the_benchmarks_depths():
    base = dict(backbone="smollm2-random", rows=256, steps=88, device="NVIDIA H200", prepare_s=0.0,
                run_speedup_vs_reference=1.0)
    cache = pd.DataFrame([dict(base, student_layers=4, teacher_layers=30.0, model="SLMRec_4<-30", teacher_cache=True,
                               step_ms=60.0, prepare_s=8.0, run_speedup_vs_reference=2.5),
                          dict(base, student_layers=30, teacher_layers=None, model="E4SRec_30", teacher_cache=None,
                               step_ms=300.0)])
    row = eff.cache_smollm2_verdict(cache).iloc[0]
    assert row.scale == "SmolLM2" and "5.00x" in row.ours and "expected at these depths: 6.19x" in row.ours
    assert row.verdict == book.HOLDS  # 5.00x >= 0.8 x 6.6 x (30 / 4) / 8 = 4.95x
    assert eff.cache_smollm2_verdict(cache.assign(step_ms=[70.0, 300.0])).verdict.iloc[0] == book.FAILS  # 4.29x
    assert eff.cache_smollm2_verdict(None).empty and eff.cache_smollm2_verdict(cache.iloc[1:]).empty
