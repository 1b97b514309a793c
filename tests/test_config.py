"""Run configs: one resolved form, one hash; the committed runs keyed by it and found by every plan."""

import dataclasses
import json
from pathlib import Path

import pytest

from slmrec_lib import config, experiment, migrate, paths, run, studies, tables
from slmrec_lib.config import DataConfig, ModelConfig, RunConfig
from slmrec_lib.evaluation import EvalProtocol
from slmrec_lib.models.llmrec import LLMRecConfig
from slmrec_lib.models.sasrec import SASRecConfig
from slmrec_lib.models.slmrec import DistillConfig
from slmrec_lib.profiles import get_profile
from slmrec_lib.training import TrainConfig
from slmrec_lib.util import execution_fields

REPO_RESULTS = paths.REPO_ROOT / "results"
FIXTURES = Path(__file__).parent / "data"


def _sasrec(params=None, train=None, **kw):
    return RunConfig(DataConfig("synthetic"), ModelConfig("sasrec", params or SASRecConfig()),
                     train=train or TrainConfig(), **kw)


def test_defaults_written_or_omitted_give_one_hash():
    assert _sasrec().hash == _sasrec(SASRecConfig(hidden=64, layers=2), TrainConfig(lr=1e-3)).hash
    # a setting of its own changes the hash; the display role does not
    assert _sasrec().hash != _sasrec(train=TrainConfig(lr=5e-4)).hash
    assert _sasrec().hash != _sasrec(SASRecConfig(dropout=0.2)).hash
    assert _sasrec().hash == _sasrec(role="item table").hash
    # the run's seed is the training's seed, written or not
    assert _sasrec(seed=3).train.seed == 3
    assert _sasrec(seed=3).hash == _sasrec(train=TrainConfig(seed=3), seed=3).hash != _sasrec().hash


def test_execution_fields_leave_the_hash_alone():
    assert {"progress", "eval_batch_size", "num_workers"} <= execution_fields(TrainConfig)
    for name in ("progress", "eval_batch_size", "num_workers"):
        value = {"progress": False, "eval_batch_size": 7, "num_workers": 2}[name]
        assert _sasrec(train=TrainConfig(**{name: value})).hash == _sasrec().hash
    p5 = studies.p5(get_profile("smoke"), "synthetic")
    assert config.with_execution(p5, chunk_rows=3).hash == p5.hash
    with pytest.raises(config.ConfigError, match="not execution settings"):
        config.with_execution(p5, max_len=3)


def test_a_baseline_has_no_backbone_and_a_student_its_teacher():
    with pytest.raises(config.ConfigError, match="backbone"):
        ModelConfig("sasrec", SASRecConfig(), backbone="smollm2")
    with pytest.raises(config.ConfigError, match="item_run"):
        ModelConfig("e4srec", LLMRecConfig(n_layers=2), targets="last", backbone="tiny")
    prof = get_profile("smoke")
    student = studies.slmrec(prof, "synthetic", 4, 8, 0)
    assert student.model.teacher.hash == studies.e4srec(prof, "synthetic", 8, 0).hash
    # blocks=4 written out is the default student: one run
    assert studies.slmrec(prof, "synthetic", 4, 8, 0, blocks=4).hash == student.hash
    assert studies.slmrec(prof, "synthetic", 4, 8, 0, blocks=2).hash != student.hash
    with pytest.raises(config.ConfigError, match="teacher"):
        dataclasses.replace(student.model, teacher=None)


def test_the_dataset_content_is_in_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMREC_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "mine.txt"
    path.write_text("1 1 2 3 4\n2 2 3 4 5\n3 1 3 5 2\n")
    cfg = RunConfig(DataConfig(str(path)), ModelConfig("popularity"))
    before = cfg.hash
    config.data_content.cache_clear()
    path.write_text("1 1 2 3 4\n2 2 3 4 5\n3 1 3 5 4\n")  # one item edited
    assert RunConfig(DataConfig(str(path)), ModelConfig("popularity")).hash != before


def test_config_json_reads_back_as_the_same_run():
    prof = get_profile("gpu")
    for cfg in [studies.slmrec(prof, "beauty", 4, 8, 1, mode="online"), studies.slmrec(prof, "sports", 4, 30, 2, ""),
                studies.p5(prof, "beauty"), studies.baseline(prof, "sports", "popularity")]:
        back = config.from_dict(json.loads(json.dumps(config.to_dict(cfg))))
        assert back == cfg and back.hash == cfg.hash and back.label == cfg.label


def test_labels_and_tidy_columns_come_from_the_config():
    prof = get_profile("gpu")
    b1 = studies.slmrec(prof, "beauty", 4, 8, 0, " +D_norm", blocks=1)
    assert b1.label == "SLMRec_4<-8 +D_norm blocks=1"
    cols = config.columns(b1)
    assert (cols["kind"], cols["layers"], cols["teacher_layers"], cols["blocks"], cols["w_ms"], cols["mode"]) == \
        ("slmrec", 4, 8, 1, 0.0, "offline")
    assert cols["teacher_run"] == b1.model.teacher.hash and cols["item_run"] == b1.model.item_run.hash
    online = studies.slmrec(prof, "beauty", 4, 8, 0, mode="online")
    assert online.label == "SLMRec_4<-8 +D_norm +L_ms mode=online" and config.columns(online)["teacher_run"] == ""
    assert studies.item_run(prof, "beauty").label == "SASRec item table"


def _committed_runs(profile):
    return sorted((REPO_RESULTS / profile / "runs").glob("*/config.json"))


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_committed_run_folder_is_named_by_its_configs_hash(profile):
    """If a change to the configs moves hashes, `python -m slmrec_lib.migrate --profile cpu gpu` re-keys
    the saved runs; this fails until it has been run and committed."""
    files = _committed_runs(profile)
    assert files
    wrong = [(f.parent.name, config.from_dict(json.loads(f.read_text())).hash) for f in files
             if config.from_dict(json.loads(f.read_text())).hash != f.parent.name]
    assert not wrong, f"run folders not named by their config's hash (run slmrec_lib.migrate): {wrong[:5]}"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_planned_run_of_the_book_is_found_done(profile, monkeypatch, real_data_dir):
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(REPO_RESULTS))
    prof = get_profile(profile)
    cfgs = run.plan(prof, list(studies.PAPER_STUDIES), list(prof.datasets))
    todo = [c.label for c in cfgs if not experiment.is_done(c, prof)]
    assert len(cfgs) == {"cpu": 16, "gpu": 110}[profile] and not todo


@pytest.mark.parametrize("profile, datasets", [("cpu", ["beauty"]), ("gpu", ["beauty", "sports"])])
def test_readme_tables_render_as_before_the_redesign(profile, datasets, monkeypatch, capsys, real_data_dir):
    """The committed fixture is the table the book printed before configs were typed (adbf048). The cpu
    one was written again after the cpu runs were retrained with the execution-order fix:
    E4SRec_1, the first LLM run the old notebook path trained right after its item table in the same
    process, changed (NDCG@10 7.06 -> 4.65), and SLMRec_4<-8 +L_ms by 0.01 points (its heads are now
    initialised after both backbones load). Written a third time when the cpu profile's LLM runs went from
    80 steps to 40 (2026-12-01): every LLM row changed, the other rows did not; git log -p
    tests/data/readme_tables_cpu.md."""
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(REPO_RESULTS))
    assert tables.main(["--profile", profile, "--dataset", *datasets]) == 0
    assert capsys.readouterr().out == (FIXTURES / f"readme_tables_{profile}.md").read_text()


def test_migration_rekeys_a_legacy_folder_and_keeps_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(tmp_path / "results"))
    cfg = studies.slmrec(get_profile("smoke"), "synthetic", 4, 8, 0, " +D_norm", blocks=1)
    legacy = {  # the config.json layout before typed configs, as the book wrote it
        "data": {"dataset": "synthetic", "preprocess": "paper", "max_users": None, "subset_seed": 0},
        "model": {"kind": "slmrec", "params": {"max_len": 10, "lora_r": 4, "lora_alpha": 4, "instruction": "Items:",
                                               "response": "\nNext:"},
                  "targets": "last", "layers": 4, "backbone": "tiny:12",
                  "item_table": {"params": {"hidden": 16, "layers": 2, "heads": 2, "max_len": 50, "dropout": 0.5},
                                 "train": {"epochs": 2, "batch_size": 64, "patience": None, "progress": False}},
                  "teacher_layers": 8,
                  "teacher_train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "patience": None, "progress": False},
                  "distill": {"w_ms": 0.0, "blocks": 1}},
        "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "patience": None, "progress": False},
        "protocols": [["sampled", 50, 0], ["full", 0, 0]], "seed": 0, "eval_users": None,
        "label": "SLMRec_4<-8 +D_norm blocks=1",
    }
    folder = paths.results_dir("smoke") / "runs" / "0123456789ab"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(legacy))
    (folder / "rows.csv").write_text("run_id,config_hash,model,protocol,stage,metric,value\n"
                                     "smoke-0123456789ab,0123456789ab,SLMRec_4<-8 +D_norm blocks=1,full,test,MRR,0.25\n")
    assert migrate.migrate("smoke") == [("0123456789ab", cfg.hash)]
    moved = paths.results_dir("smoke") / "runs" / cfg.hash
    saved = json.loads((moved / "config.json").read_text())
    assert saved["previous_hash"] == "0123456789ab" and config.from_dict(saved) == cfg
    rows = (moved / "rows.csv").read_text()
    assert f"smoke-{cfg.hash}" in rows and ",0.25" in rows and "offline" in rows
    assert migrate.migrate("smoke") == []  # idempotent


def test_an_overridden_profile_reaches_the_runs():
    prof = get_profile("smoke", seeds=(0, 5))
    assert {c.seed for c in studies.main_table(prof, "synthetic")} == {0, 5}
    assert {c.seed for c in run.plan(prof, ["ablation"], ["synthetic"])} == {0, 5}
    assert DistillConfig() == studies.slmrec(prof, "synthetic", 4, 8).model.distill
    assert EvalProtocol("sampled", 50, 0) == studies.protocols(prof)[0]
