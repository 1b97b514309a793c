import dataclasses
import json

import pandas as pd
import pytest

from slmrec_lib import config, experiment, studies
from slmrec_lib.config import DataConfig, ModelConfig, RunConfig
from slmrec_lib.evaluation import EvalProtocol
from slmrec_lib.models.sasrec import SASRecConfig
from slmrec_lib.profiles import ProfileError, get_profile
from slmrec_lib.training import TrainConfig


def _sasrec(**train):
    return RunConfig(
        DataConfig("synthetic"),
        ModelConfig("sasrec", SASRecConfig(hidden=16, layers=1, heads=1, max_len=10, dropout=0.1)),
        train=TrainConfig(**dict(dict(epochs=1, batch_size=64, patience=None, progress=False), **train)),
        protocols=(EvalProtocol("sampled", 50, 0), EvalProtocol("full", 0, 0)),
    )


def test_hash_ignores_role_and_changes_with_settings():
    a = _sasrec()
    assert a.hash == RunConfig(a.data, a.model, a.train, a.protocols, role="item table").hash
    assert a.hash != _sasrec(lr=5e-4).hash
    p5 = studies.p5(get_profile("gpu"), "sports")
    faster = config.with_execution(p5, chunk_rows=2048)
    assert faster.model.params.chunk_rows == 2048
    assert faster.hash == p5.hash  # an execution setting
    with pytest.raises(ValueError, match="not execution settings"):
        config.with_execution(p5, lr=1.0)
    assert dataclasses.replace(p5, model=dataclasses.replace(
        p5.model, params=dataclasses.replace(p5.model.params, max_len=7))).hash != p5.hash
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


def test_a_run_stopped_in_its_evaluation_does_not_score_finished_stages_again(monkeypatch):
    cfg = _sasrec(lr=3e-3)
    calls = []
    real = experiment.rank_positives

    def ranks(model, split, protocol, stage, users=None, return_ties=False):
        calls.append((protocol.name, stage))
        if len(calls) == 3 and not stopped:  # the full-ranking valid stage, after the two sampled ones
            stopped.append(True)
            raise KeyboardInterrupt("stopped during evaluation")
        return real(model, split, protocol, stage, users=users, return_ties=return_ties)

    stopped = []
    monkeypatch.setattr(experiment, "rank_positives", ranks)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(cfg, "smoke")
    folder = experiment.run_dir(cfg, "smoke")
    assert sorted(p.name for p in folder.glob("ranks-*")) == ["ranks-sampled-50-seed0-test.npz",
                                                               "ranks-sampled-50-seed0-valid.npz"]
    calls.clear()
    rows = experiment.run(cfg, "smoke")
    assert calls == [("full", "valid"), ("full", "test")]  # the sampled stages came from the folder
    assert set(rows.protocol) == {"sampled-50-seed0", "full"}
    assert not list(folder.glob("ranks-*")) and not list(folder.glob("checkpoint*"))
    # the same numbers as a run that was never stopped
    monkeypatch.setattr(experiment, "rank_positives", real)
    again = experiment.run(cfg, "smoke", force=True)
    pd.testing.assert_series_equal(rows.value, again.value)


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
    from slmrec_lib import book

    gpu, cpu = book.start("gpu", quiet=True), book.start("cpu", quiet=True)
    plays = {c.label: book.paper_row(c, gpu) for c in studies.main_table(gpu.profile, "beauty") if c.seed == 0}
    assert plays["E4SRec_30"] == "E4SRec*" and plays["E4SRec_8"] == "E4SRec_8*"
    assert plays["SLMRec_4<-30"] == "SLMRec_4<-32" and plays["SLMRec_4<-8 +D_norm"] == "SLMRec_4<-8 +D_norm"
    # cpu: depth = mid = 8; the deepest E4SRec plays E4SRec* (the reference), E4SRec_8* then has no model
    assert book.paper_row(studies.e4srec(cpu.profile, "beauty", 8), cpu) == "E4SRec*"
    # three seeds of every row but P5
    per_label = pd.Series(labels).value_counts()
    assert per_label["SLMRec_4<-8"] == 3
    blocks = studies.block_count("gpu", "beauty")
    assert sorted({c.model.distill.blocks for c in blocks}) == [1, 2, 4]
    # b = 1 has no intermediate block end, so no L_ms; b = 4 is the main table's full student (one run)
    by_label = {c.label: c for c in blocks if c.seed == 0}
    assert by_label["SLMRec_4<-8 +D_norm blocks=1"].model.distill.w_ms == 0.0
    full = [c for c in studies.main_table("gpu", "beauty") if c.label == "SLMRec_4<-8 +D_norm +L_ms" and c.seed == 0]
    assert by_label["SLMRec_4<-8 +D_norm +L_ms"].hash == full[0].hash


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
                assert isinstance(c.model.distill, DistillConfig)
    (p5,) = [c for c in studies.main_table(profile, dataset) if c.model.kind == "p5" and c.seed == 0]
    assert p5.train.valid_users == prof.p5_eval_users == p5.eval_users


def test_run_plan_keeps_only_the_asked_model_kinds(capsys):
    from slmrec_lib import run

    everything = run.plan("smoke", ["main_table"], ["synthetic"])
    llm = run.plan("smoke", ["main_table"], ["synthetic"], models=["e4srec", "slmrec"])
    assert {c.model.kind for c in llm} == {"e4srec", "slmrec"}
    assert [c.hash for c in llm] == [c.hash for c in everything if c.model.kind in ("e4srec", "slmrec")]
    assert run.main(["--profile", "smoke", "--dataset", "synthetic", "--models", "sasrek", "--list"]) == 2
    assert "unknown model kind" in capsys.readouterr().err


def test_p5_chunk_rows_option_changes_only_p5_execution(monkeypatch, capsys):
    from slmrec_lib import run

    seen = {}

    def fake_work(cfgs, *args, **kwargs):  # what would be trained
        seen["cfgs"] = cfgs
        return 0

    monkeypatch.setattr(run, "work", fake_work)
    assert run.main(["--profile", "smoke", "--dataset", "synthetic", "--study", "main_table",
                     "--p5-chunk-rows", "4096"]) == 0
    planned = {c.hash: c for c in run.plan("smoke", ["main_table"], ["synthetic"])}
    assert [c.hash for c in seen["cfgs"]] == list(planned)  # the same runs
    for c in seen["cfgs"]:
        want = 4096 if c.model.kind == "p5" else getattr(planned[c.hash].model.params, "chunk_rows", None)
        assert getattr(c.model.params, "chunk_rows", None) == want
    assert any(c.model.kind == "p5" for c in seen["cfgs"])
    assert run.main(["--profile", "smoke", "--p5-chunk-rows", "0"]) == 2
    assert "--p5-chunk-rows must be at least 1" in capsys.readouterr().err


def test_gpu_profile_without_gpu_reads_finished_runs_and_names_the_rest(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    prof = get_profile("gpu")
    full = lambda cfg: dataclasses.replace(cfg, protocols=(EvalProtocol("full", 0, 0),))  # noqa: E731  (100 items)
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
    cfg = studies.e4srec(get_profile("smoke"), "synthetic", 2)
    table = cfg.model.item_run
    experiment.run(table, "smoke")  # trains the SASRec item table once
    assert experiment.load_weights(table, "smoke", "item_embeddings.pt").ndim == 2
    (experiment.run_dir(table, "smoke") / "item_embeddings.pt").unlink()  # as on a fresh clone: weights not committed
    with pytest.raises(FileNotFoundError, match="has saved results but no weights"):
        experiment.run(cfg, "smoke")


def test_a_run_another_process_trains_is_busy_until_it_is_free():
    cfg = _sasrec()
    folder = experiment.run_dir(cfg, "smoke")
    with experiment.run_lock(folder):  # as another process training it would
        with pytest.raises(experiment.RunBusy, match=cfg.hash):
            experiment.run(cfg, "smoke", wait=False)
    assert not (folder / "rows.csv").exists()
    rows = experiment.run(cfg, "smoke", wait=False)  # lock free: it trains
    assert len(rows) and (folder / "rows.csv").exists()


def test_dependencies_come_before_the_runs_that_read_them():
    from slmrec_lib.config import dependencies

    cfgs = {c.label: c for c in studies.study("main_table", "smoke", "synthetic") if c.seed == 0}
    assert dependencies(cfgs["SASRec"]) == []
    assert [d.label for d in dependencies(cfgs["E4SRec_8"])] == ["SASRec item table"]
    student = cfgs["SLMRec_4<-8"]
    assert [d.label for d in dependencies(student)] == ["SASRec item table", "E4SRec_8"]
    online = studies.slmrec(get_profile("smoke"), "synthetic", 4, 8, 0, variant="", mode="online")
    assert [d.label for d in dependencies(online)] == ["SASRec item table"]


def test_a_worker_takes_free_runs_while_another_process_trains_one(capsys):
    import threading

    from slmrec_lib import run

    busy, free = _sasrec(), _sasrec(lr=5e-4)
    lock = experiment.run_lock(experiment.run_dir(busy, "smoke"))
    lock.__enter__()
    timer = threading.Timer(3.0, lock.__exit__, (None, None, None))  # the other process finishes after 3 s
    timer.start()
    try:
        assert run.work([busy, free], "smoke", name="w9", poll_seconds=0.2) == 0
    finally:
        timer.cancel()
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[w9]")]
    assert [line.split(" (")[1][:12] for line in out[:2]] == [free.hash, busy.hash]  # the free one first
    assert out[-1] == "[w9] all runs done"


def test_a_sigterm_stops_the_worker_with_a_checkpoint_and_the_next_call_resumes(monkeypatch, capsys):
    import os
    import signal

    import torch

    from slmrec_lib import run, training

    cfg = _sasrec(lr=4e-3, epochs=2, batch_size=16)
    batches = []
    real = training._Rows.__getitem__

    def rows(self, idx):  # the 3rd batch of the first call brings a SIGTERM
        batches.append(1)
        if len(batches) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, idx)

    monkeypatch.setattr(training._Rows, "__getitem__", rows)
    assert run.work([cfg], "smoke", name="w5") == 128 + signal.SIGTERM
    folder = experiment.run_dir(cfg, "smoke")
    assert torch.load(folder / training.CHECKPOINT, weights_only=False)["state"]["step"] == 3
    assert not (folder / "rows.csv").exists()
    assert "SIGTERM at step 3/" in capsys.readouterr().out
    assert run.work([cfg], "smoke", name="w5") == 0
    assert "resuming" in capsys.readouterr().out and (folder / "rows.csv").exists()


def test_parallel_workers_train_each_run_once(tmp_path):
    import os
    import subprocess
    import sys

    from slmrec_lib import paths

    args = ["--profile", "smoke", "--dataset", "synthetic", "--study", "main_table", "--seeds", "0",
            "--models", "sasrec", "gru4rec", "e4srec"]
    proc = subprocess.run([sys.executable, "-m", "slmrec_lib.run", *args, "--workers", "2"], cwd=paths.REPO_ROOT,
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    trained = [line.split()[-3] for line in proc.stdout.splitlines() if line.startswith("[run]")]
    assert len(trained) == len(set(trained)) >= 4  # item table, SASRec, GRU4Rec and the E4SRec runs, once each
    assert {"[w0] all runs done", "[w1] all runs done"} <= set(proc.stdout.splitlines())
    assert set(experiment.collect("smoke").runs_per_device) == {2}  # two workers shared the CPU
    listing = subprocess.run([sys.executable, "-m", "slmrec_lib.run", *args, "--list"], cwd=paths.REPO_ROOT,
                             capture_output=True, text=True, env=dict(os.environ), timeout=600).stdout
    assert listing and all(line.startswith("done") for line in listing.splitlines())


def test_a_run_records_the_sha256_of_the_item_table_it_read():
    cfg = studies.e4srec(get_profile("smoke"), "synthetic", 2, seed=1)
    experiment.run(cfg, "smoke")
    table = experiment.run_dir(cfg.model.item_run, "smoke")
    inputs = json.loads((experiment.run_dir(cfg, "smoke") / experiment.INPUTS).read_text())
    recorded = json.loads((table / experiment.MANIFEST).read_text())["item_embeddings.pt"]
    assert inputs == {"item_table": dict(run=cfg.model.item_run.hash, file="item_embeddings.pt", sha256=recorded)}
    assert recorded == experiment.sha256_file(table / "item_embeddings.pt")
    assert not (table / experiment.INPUTS).exists()  # the SASRec reads no other run's weights


def test_a_run_that_only_adds_protocols_scores_the_finished_twins_weights(monkeypatch):
    cfg = _sasrec(lr=3e-3)
    rows = experiment.run(cfg, "smoke")
    shuffled = EvalProtocol("sampled", 50, 0, shuffle=True)
    more = dataclasses.replace(cfg, protocols=cfg.protocols + (shuffled,))
    other_first = dataclasses.replace(cfg, protocols=cfg.protocols[::-1])  # validates on another protocol
    assert config.training_key(more) == config.training_key(cfg) != config.training_key(other_first)
    assert more.hash != cfg.hash and experiment.training_twin(other_first, get_profile("smoke")) is None

    def no_training(*args, **kwargs):
        raise AssertionError("the twin's weights were trained again")

    monkeypatch.setattr("slmrec_lib.training.fit", no_training)
    again = experiment.run(more, "smoke")
    cols = ["protocol", "stage", "metric", "value", "train_seconds", "steps", "best_step"]
    pd.testing.assert_frame_equal(again[again.protocol != shuffled.name][cols].reset_index(drop=True),
                                  rows[cols].reset_index(drop=True))
    assert set(again.protocol) == {p.name for p in more.protocols}
    inputs = json.loads((experiment.run_dir(more, "smoke") / experiment.INPUTS).read_text())
    assert inputs["weights"]["run"] == cfg.hash


def test_a_twin_with_damaged_weights_is_refused(monkeypatch):
    cfg = _sasrec(lr=4e-3)
    experiment.run(cfg, "smoke")
    weights = experiment.run_dir(cfg, "smoke") / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-8] + b"damaged!")
    more = dataclasses.replace(cfg, protocols=cfg.protocols + (EvalProtocol("full", 0, 0, shuffle=True),))
    with pytest.raises(experiment.DamagedRun, match="sha256 differs"):
        experiment.run(more, "smoke")


def test_offline_students_of_one_teacher_share_its_states_and_keep_their_numbers(monkeypatch, tmp_path):
    from slmrec_lib import paths
    from slmrec_lib.models.llmrec import LLMRec

    monkeypatch.setenv("SLMREC_CACHE_DIR", str(tmp_path / "cache"))
    prof = get_profile("smoke")
    first, second = (studies.slmrec(prof, "synthetic", 4, 8, seed=3, variant=v) for v in ("", " +D_norm +L_ms"))
    experiment.run(first, prof)  # trains the teacher, then a student that fills the store
    stores = list((paths.cache_dir() / "teacher_states").glob("*.pt"))
    assert len(stores) == 1 and first.model.teacher.hash in stores[0].name

    calls = []
    live = LLMRec.last_token_states

    def counted(self, input):
        calls.append(len(input))
        return live(self, input)

    monkeypatch.setattr(LLMRec, "last_token_states", counted)
    shared = experiment.run(second, prof)
    student_calls = len(calls)  # the student's own forwards only: its teacher's states were all stored
    steps = int(shared.steps.iloc[0])
    assert student_calls >= steps

    calls.clear()
    import shutil
    shutil.rmtree(experiment.run_dir(second, prof))
    monkeypatch.setattr(experiment, "_teacher_state_store", lambda *a: None)
    alone = experiment.run(second, prof)  # the live teacher at every step
    assert len(calls) == student_calls + steps
    cols = ["protocol", "stage", "metric", "value"]
    pd.testing.assert_frame_equal(shared[cols], alone[cols])


def test_a_damaged_teacher_state_file_is_set_aside(tmp_path, capsys):
    import torch

    from slmrec_lib.teacher_states import TeacherStateStore

    store = TeacherStateStore.for_teacher(tmp_path, "abc", "0" * 64)
    x = torch.arange(6).reshape(2, 3)
    store.put(x, [torch.ones(2, 4), torch.zeros(2, 4)])
    store.save()
    again = TeacherStateStore.for_teacher(tmp_path, "abc", "0" * 64)
    assert [t.tolist() for t in again.get(x)] == [[[1.0] * 4] * 2, [[0.0] * 4] * 2]
    assert again.get(x + 1) is None
    other_weights = TeacherStateStore.for_teacher(tmp_path, "abc", "1" * 64)  # another teacher: another file
    assert other_weights.get(x) is None and other_weights.path != store.path
    store.path.write_bytes(store.path.read_bytes() + b"!")
    damaged = TeacherStateStore.for_teacher(tmp_path, "abc", "0" * 64)
    assert damaged.get(x) is None and not store.path.exists()
    assert "set aside" in capsys.readouterr().out
