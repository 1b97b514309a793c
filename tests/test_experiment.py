import dataclasses
import json

import pandas as pd
import pytest

from slmrec_lib import experiment, studies
from slmrec_lib.experiment import DataConfig, ModelConfig, RunConfig
from slmrec_lib.profiles import ProfileError, get_profile


def _sasrec(**train):
    return RunConfig(
        DataConfig("synthetic"),
        ModelConfig("sasrec", params=dict(hidden=16, layers=1, heads=1, max_len=10, dropout=0.1)),
        train=dict(dict(epochs=1, batch_size=64, patience=None, progress=False), **train),
        protocols=(("sampled", 50, 0), ("full", 0, 0)),
        label="SASRec",
    )


def test_hash_ignores_label_and_changes_with_settings():
    a = _sasrec()
    assert a.hash == RunConfig(a.data, a.model, a.train, a.protocols, label="other").hash
    assert a.hash != _sasrec(lr=5e-4).hash
    with pytest.raises(ValueError, match="unknown model kind"):
        RunConfig(DataConfig(), ModelConfig("sasrek"))


def test_run_writes_config_and_rows_once(monkeypatch):
    cfg = _sasrec()
    rows = experiment.run(cfg, "smoke")
    folder = experiment.run_dir(cfg, "smoke")
    assert json.loads((folder / "config.json").read_text())["model"]["kind"] == "sasrec"
    assert set(rows.protocol) == {"sampled-50-seed0", "full"}
    assert set(rows.stage) == {"valid", "test"}
    assert {"config_hash", "git_sha", "seed", "device", "train_seconds", "metric", "value"} <= set(rows.columns)
    assert rows.value.between(0, 1).all()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("slmrec_lib.training.fit", no_training)
    again = experiment.run(cfg, "smoke")
    pd.testing.assert_frame_equal(rows, again)
    assert len(experiment.collect("smoke")) == len(rows)


def test_interrupted_run_leaves_no_rows(monkeypatch):
    cfg = _sasrec(lr=2e-3)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("slmrec_lib.evaluation.metrics_from_ranks", crash)
    monkeypatch.setattr("slmrec_lib.experiment.metrics_from_ranks", crash)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(cfg, "smoke")
    assert not (experiment.run_dir(cfg, "smoke") / "rows.csv").exists()


def test_gpu_profile_without_gpu_asks_for_saved_llm_results(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    cfg = studies.e4srec(get_profile("gpu"), "beauty", 4)
    with pytest.raises(experiment.MissingResult, match="only on a GPU"):
        experiment.run(cfg, "gpu")


def test_unknown_profile_is_an_error():
    with pytest.raises(ProfileError, match="known profiles: smoke, cpu, gpu, paper"):
        get_profile("laptop")


def test_studies_name_the_paper_rows():
    labels = [c.label for c in studies.main_table("gpu", "beauty")]
    assert {"E4SRec_30", "E4SRec_8", "E4SRec_4", "SLMRec_8<-30", "SLMRec_4<-30", "SLMRec_4<-8",
            "SLMRec_4<-8 +D_norm +L_ms", "GRU4Rec", "BERT4Rec", "SASRec"} <= set(labels)
    assert studies.paper_row("E4SRec_30", "gpu") == "E4SRec*"
    assert studies.paper_row("SLMRec_4<-30", "gpu") == "SLMRec_4<-32"
    assert studies.paper_row("SLMRec_4<-8 +D_norm", "gpu") == "SLMRec_4<-8 +D_norm"
    assert studies.paper_row("E4SRec_8", "cpu") == "E4SRec_8*"
    # three seeds of every row but P5
    per_label = pd.Series(labels).value_counts()
    assert per_label["SLMRec_4<-8"] == 3
    blocks = studies.block_count("gpu", "beauty")
    assert sorted({c.model.distill.get("blocks", 4) for c in blocks}) == [1, 2, 4]
    # b = 1 has no intermediate block end, so no L_ms; b = 4 is the main table's full student (one run)
    by_label = {c.label: c for c in blocks if c.seed == 0}
    assert by_label["SLMRec_4<-8 +D_norm blocks=1"].model.distill["w_ms"] == 0.0
    full = [c for c in studies.main_table("gpu", "beauty") if c.label == "SLMRec_4<-8 +D_norm +L_ms" and c.seed == 0]
    assert by_label["SLMRec_4<-8 +D_norm +L_ms blocks=4"].hash == full[0].hash


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_every_planned_run_has_valid_settings(profile):
    """Each study's SLMRec runs build a valid DistillConfig (b = 1 without L_ms), and P5 validates on
    its evaluation users rather than on every user."""
    from slmrec_lib.models.slmrec import DistillConfig

    prof = get_profile(profile)
    dataset = prof.datasets[0]
    for name in studies.STUDIES:
        for c in studies.study(name, profile, dataset):
            if c.model.kind == "slmrec":
                DistillConfig(**c.model.distill)
    (p5,) = [c for c in studies.main_table(profile, dataset) if c.model.kind == "p5" and c.seed == 0]
    assert p5.train["valid_users"] == prof.p5_eval_users == p5.eval_users


def test_run_plan_keeps_only_the_asked_model_kinds(capsys):
    from slmrec_lib import run

    everything = run.plan("smoke", ["main_table"], ["synthetic"])
    llm = run.plan("smoke", ["main_table"], ["synthetic"], models=["e4srec", "slmrec"])
    assert {c.model.kind for c in llm} == {"e4srec", "slmrec"}
    assert [c.hash for c in llm] == [c.hash for c in everything if c.model.kind in ("e4srec", "slmrec")]
    assert run.main(["--profile", "smoke", "--dataset", "synthetic", "--models", "sasrek", "--list"]) == 2
    assert "unknown model kind" in capsys.readouterr().err


def test_gpu_profile_without_gpu_reads_finished_runs_and_names_the_rest(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    prof = get_profile("gpu")
    full = lambda cfg: dataclasses.replace(cfg, protocols=(("full", 0, 0),))  # noqa: E731  (synthetic: 100 items)
    popularity = full(studies.baseline(prof, "synthetic", "popularity"))
    sasrec = full(studies.baseline(prof, "synthetic", "sasrec"))
    e4srec = full(studies.e4srec(prof, "synthetic", 4))
    experiment.run(popularity, "gpu")  # trains nothing: any machine may make it

    def no_training(*args, **kwargs):
        raise AssertionError("a gpu profile read without a GPU must not train")

    monkeypatch.setattr("slmrec_lib.training.fit", no_training)
    rows = experiment.run_all([popularity, sasrec, e4srec], "gpu")
    assert set(rows.model) == {"Popularity"}
    assert [m["hash"] for m in rows.attrs["missing"]] == [sasrec.hash, e4srec.hash]
    out = capsys.readouterr().out
    assert "1 of 3 runs already done; 2 not run yet" in out and f"E4SRec_4 on synthetic, seed 0 ({e4srec.hash})" in out


def test_item_table_with_rows_but_no_weights_says_what_to_do():
    from slmrec_lib import builders

    cfg = studies.e4srec(get_profile("smoke"), "synthetic", 2)
    assert builders.item_table(cfg, "smoke").ndim == 2  # trains the SASRec item table once
    folder = experiment.run_dir(builders.item_table_config(cfg), "smoke")
    (folder / "item_table.pt").unlink()  # as on a fresh clone: rows.csv is committed, weights are not
    with pytest.raises(FileNotFoundError, match="has saved results but no weights"):
        builders.item_table(cfg, "smoke")
