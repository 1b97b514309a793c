"""The run cache never serves a wrong number. One test per case, each through the
public entry points (experiment.run / run_all, `python -m slmrec_lib.run`, papermill, tables.main).

Every case was measured at commit adbf048; each test says, in its docstring, what that code did, and
fails on it. The trained runs are tiny smoke configs, shared through module-scoped fixtures: the
E4SRec_1 run of the smoke layer scan and its SASRec item table, trained once in a results folder that
tests copy before they damage anything.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from slmrec_lib import builders, data, evaluation, experiment, studies, tables, training
from slmrec_lib.profiles import get_profile

REPO = Path(__file__).resolve().parent.parent
PROFILE = get_profile("smoke")
CFG = studies.e4srec(PROFILE, "synthetic", 1)  # E4SRec_1 of the smoke layer scan
ITEMS = CFG.model.item_run  # its SASRec item table (the smoke SASRec baseline has the same config)
# the columns a run computes (no clocks, device, git sha): these must agree bit for bit
VALUES = ["config_hash", "protocol", "stage", "metric", "value", "steps", "best_step", "train_params",
          "inference_params", "n_users"]
SAMPLE = "amazon2018/CDs_and_Vinyl/CDs_and_Vinyl.sample.csv"


def values(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[VALUES].sort_values(["protocol", "stage", "metric"]).reset_index(drop=True)


def assert_same_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(values(got), values(want), check_exact=True)


@contextlib.contextmanager
def results_at(root: Path):
    """SLMREC_RESULTS_DIR set to `root` for a module-scoped fixture (monkeypatch is per test)."""
    old = os.environ.get("SLMREC_RESULTS_DIR")
    os.environ["SLMREC_RESULTS_DIR"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SLMREC_RESULTS_DIR", None)
        else:
            os.environ["SLMREC_RESULTS_DIR"] = old


def python(*args: str, root: Path, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """A Python subprocess in the repository with its own results folder, one thread (as the tests)."""
    full = dict(os.environ, SLMREC_RESULTS_DIR=str(root), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=timeout)


def cli(*args: str, root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return python("-m", "slmrec_lib.run", "--profile", "smoke", *args, root=root, timeout=timeout)


def rows_in(root: Path, cfg=CFG) -> pd.DataFrame:
    with results_at(root):
        return experiment.read_rows(cfg, "smoke")


def folder_in(root: Path, cfg=CFG) -> Path:
    return root / "smoke" / "runs" / cfg.hash


def copy_runs(src_root: Path, dst_root: Path, cfgs=None) -> None:
    """Copy the run folders of `cfgs` (default: all) from one results folder to another."""
    for src in (src_root / "smoke" / "runs").iterdir():
        if cfgs is None or src.name in {c.hash for c in cfgs}:
            shutil.copytree(src, dst_root / "smoke" / "runs" / src.name)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """CFG trained by experiment.run in a fresh results folder, the item table trained in-process first:
    (results root, CFG's rows, the printed output)."""
    root = tmp_path_factory.mktemp("base") / "results"
    out = io.StringIO()
    with results_at(root), contextlib.redirect_stdout(out):
        rows = experiment.run(CFG, "smoke")
    return root, rows, out.getvalue()


# ============================================================== 1. execution order changes results
def test_item_table_loaded_from_another_process_gives_the_same_rows(base, tmp_path, monkeypatch):
    """adbf048 seeded before build_model, which trained the item table in the same process when it was
    missing: E4SRec_1 then started from another RNG state than when the table was loaded from disk (full
    HR@10 9.33 via the CLI, 14.00 via the notebook). Now: (b) the table trained by another process and
    loaded here gives the rows of (a) bit for bit."""
    root = tmp_path / "b"
    script = ("from slmrec_lib import experiment, studies; from slmrec_lib.profiles import get_profile; "
              "experiment.run(studies.item_run(get_profile('smoke'), 'synthetic'), 'smoke')")
    done = python("-c", script, root=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder_in(root, ITEMS) / "rows.csv").exists() and not folder_in(root).exists()
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    assert_same_values(experiment.run(CFG, "smoke"), base[1])
    assert_same_values(rows_in(root, ITEMS), rows_in(base[0], ITEMS))


def test_cli_gives_the_same_rows(base, tmp_path):
    """(c) `python -m slmrec_lib.run --study layer_scan --models e4srec` in a fresh folder: the CLI
    path (adbf048: 9.33 there against 14.00 from the notebook)."""
    root = tmp_path / "c"
    done = cli("--study", "layer_scan", "--models", "e4srec", root=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_same_values(rows_in(root), base[1])


def test_two_workers_give_the_same_rows(base, tmp_path):
    """(d) `--workers 2`: one worker trains the item table while the other waits for it, then each takes
    E4SRec runs; the rows are still those of (a) (adbf048: whichever process order ran first won)."""
    root = tmp_path / "d"
    done = cli("--study", "layer_scan", "--models", "e4srec", "--workers", "2", root=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_same_values(rows_in(root), base[1])
    assert_same_values(rows_in(root, ITEMS), rows_in(base[0], ITEMS))


@pytest.mark.slow
def test_layer_scan_notebook_gives_the_same_rows(base, tmp_path):
    """(e) papermill of notebooks/01_layer_scan.ipynb at the smoke profile from scratch: the notebook
    path (adbf048: full HR@10 14.00 against 9.33 through the CLI)."""
    root = tmp_path / "e"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/01_layer_scan.ipynb", str(tmp_path / "out.ipynb"),
         "-p", "profile", "smoke", "-k", "python3", "--no-progress-bar"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, SLMREC_RESULTS_DIR=str(root), SLMREC_FIGURES_DIR=str(tmp_path / "figures"),
                 OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_values(rows_in(root), base[1])


# ============================================================== 2. a damaged rows.csv
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_rows_are_not_done_and_are_trained_again(base, tmp_path, monkeypatch, capsys, damage):
    """adbf048: is_done only asked whether rows.csv existed, so a file cut in the middle was served with
    wrong values and missing rows, and a 0-byte one crashed tables with pandas' EmptyDataError naming no
    file. Now the rows are checked on read: not done, the folder named, tables and run_all go on, and the
    run is trained again (to the same rows), the damaged file kept beside."""
    root = tmp_path / "results"
    copy_runs(base[0], root)
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    rows = folder_in(root) / "rows.csv"
    text = rows.read_text()
    damaged = text[: len(text) // 2] if damage == "truncated" else ""  # cut inside a line, or nothing
    rows.write_text(damaged)

    assert not experiment.is_done(CFG, "smoke")
    assert str(folder_in(root)) in capsys.readouterr().out

    assert tables.main(["--profile", "smoke", "--dataset", "synthetic"]) == 0  # the item table's row
    printed = capsys.readouterr().out
    assert "SASRec" in printed and "E4SRec_1 " not in printed  # the damaged run is not shown

    again = experiment.run_all([CFG], "smoke")
    assert_same_values(again, base[1])
    kept = list(folder_in(root).glob("rows.csv.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == damaged
    assert experiment.is_done(CFG, "smoke")


# ============================================================== 3. a teacher replaced by an empty state dict
STUDENT = studies.slmrec(PROFILE, "synthetic", 1, 2, variant="", blocks=1)  # SLMRec_1<-2, a 2-layer teacher


@pytest.fixture(scope="module")
def teacher_root(base, tmp_path_factory):
    """A results folder with the item table and STUDENT's trained teacher (E4SRec_2)."""
    root = tmp_path_factory.mktemp("teacher") / "results"
    copy_runs(base[0], root, [ITEMS])
    with results_at(root), contextlib.redirect_stdout(io.StringIO()):
        experiment.run(STUDENT.model.teacher, "smoke")
    return root


def test_empty_teacher_weights_are_refused(teacher_root, tmp_path, monkeypatch):
    """adbf048 loaded the teacher with load_state_dict(strict=False): an empty model.pt trained the
    student against an untrained teacher, silently. Now the manifest's sha256 stops it (DamagedRun naming
    the file) and, with a manifest that agrees with the empty file, the strict load does (BuildError)."""
    root = tmp_path / "results"
    shutil.copytree(teacher_root, root)
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    weights = folder_in(root, STUDENT.model.teacher) / "model.pt"
    torch.save({}, weights)
    with pytest.raises(experiment.DamagedRun, match=re.escape(str(weights))):
        experiment.run(STUDENT, "smoke")
    manifest = weights.parent / experiment.MANIFEST
    recorded = json.loads(manifest.read_text())
    recorded["model.pt"] = experiment.sha256_file(weights)
    manifest.write_text(json.dumps(recorded))
    with pytest.raises(builders.BuildError, match=f"teacher run {STUDENT.model.teacher.hash}.*missing"):
        experiment.run(STUDENT, "smoke")
    assert not (folder_in(root, STUDENT) / "rows.csv").exists()


# ============================================================== 4. a ratings file with columns swapped
@pytest.mark.parametrize("order, column", [((1, 0, 2, 3), "column 1 (item)"), ((0, 1, 3, 2), "column 3 (rating)")])
def test_swapped_rating_columns_are_named(real_data_dir, tmp_path, order, column):
    """adbf048 read any four columns as item,user,rating,timestamp and ran to completion on wrong data
    (users as items, timestamps as ratings). Now the layout is checked and the column named."""
    frame = pd.read_csv(real_data_dir / SAMPLE, header=None)
    good, swapped = tmp_path / "good.csv", tmp_path / "swapped.csv"
    frame.to_csv(good, header=False, index=False)
    frame[list(order)].to_csv(swapped, header=False, index=False)
    loose = replace(data.Preprocess.paper(), user_k=2, item_k=1)  # the sample is too sparse for 5-cores
    assert data.load_dataset(str(good), preprocess=loose).n_items > 0  # the layout check passes the original
    with pytest.raises(data.DataError, match=re.escape(column) + ".*swapped"):
        data.load_dataset(str(swapped), preprocess=loose)


# ============================================================== 5. NaN scores
class NaNScores(torch.nn.Module):
    """A model whose every score is NaN (as a diverged training leaves it)."""

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items, self.max_len = n_items, 10

    def score_all(self, input):
        return torch.full((input.shape[0], self.n_items + 1), float("nan"))

    def score_candidates(self, input, candidates):
        return torch.full(candidates.shape, float("nan"))


@pytest.mark.parametrize("protocol", [evaluation.EvalProtocol("sampled", 50, 0), evaluation.EvalProtocol("full", 0, 0)],
                         ids=["sampled", "full"])
def test_nan_scores_are_an_error(protocol):
    """adbf048 ranked a positive by counting candidates that scored higher, and NaN > NaN is False:
    every positive came first (HR@1 = MRR = 1.0; full-ranking NDCG inf). Now EvaluationError."""
    split = data.leave_one_out(data.synthetic())
    with pytest.raises(evaluation.EvaluationError, match="non-finite"):
        evaluation.evaluate(NaNScores(split.n_items), split, protocol, stage="test")


# ============================================================== 6. runs of other configs sharing a label
def test_tables_show_only_the_planned_config(base, tmp_path, monkeypatch, capsys):
    """adbf048's tables read every rows.csv of the profile and grouped by label: a second SASRec that
    differs only by lr was averaged in as "2 seeds ± std". Now tables select the plan's configs."""
    root = tmp_path / "results"
    copy_runs(base[0], root, [ITEMS])
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    sasrec = studies.baseline(PROFILE, "synthetic", "sasrec")
    other = replace(sasrec, train=replace(sasrec.train, lr=sasrec.train.lr * 3))
    assert other.label == sasrec.label and other.hash != sasrec.hash
    experiment.run(other, "smoke", quiet=True)
    planned = experiment.run(sasrec, "smoke")
    assert not values(experiment.read_rows(other, "smoke"))["value"].equals(values(planned)["value"])

    assert tables.main(["--profile", "smoke", "--dataset", "synthetic"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("| SASRec"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "1" and "±" not in line, line
    hr10 = planned[(planned.stage == "test") & (planned.metric == "HR@10") & planned.protocol.str.startswith("sampled")]
    assert f"{100 * hr10.value.iloc[0]:.2f}" in cells


# ============================================================== 7. an empty plan
def test_seeds_outside_the_plan_exit_non_zero(tmp_path):
    """adbf048 filtered the plan to nothing, printed "all runs done" and exited 0. Now run.EmptyPlan:
    exit 2 with a message naming the seeds the profile plans."""
    done = cli("--seeds", "7", "--list", root=tmp_path / "results", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "seeds [7]" in done.stderr and "plans seeds [0]" in done.stderr
    assert "all runs done" not in done.stdout


# ============================================================== 8. a misspelt notebook parameter
def test_misspelt_notebook_parameter_fails_through_papermill_cli(tmp_path):
    """adbf048: papermill only warns about `-p dataste beauty` and the notebook ran its default dataset.
    Now the book's parameter check (book.start(..., names=...)) fails the notebook, naming the name."""
    done = subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/00_data.ipynb", str(tmp_path / "out.ipynb"),
         "-p", "dataste", "beauty", "-k", "python3", "--no-progress-bar"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, SLMREC_RESULTS_DIR=str(tmp_path / "results"),
                 SLMREC_FIGURES_DIR=str(tmp_path / "figures")))
    assert done.returncode != 0
    assert re.search(r"unknown notebook parameter\(s\) \['dataste'\]", done.stdout + done.stderr)


# ============================================================== clear errors instead of tracebacks
@pytest.mark.parametrize("kind", ["unknown name", "directory"])
def test_bad_dataset_exits_2_before_any_run_folder(tmp_path, kind):
    """adbf048: one bad name gave 5 tracebacks and 18 empty run folders. Now the CLI checks each dataset
    once, up front: exit 2 with the DataError text, and no run folder."""
    root = tmp_path / "results"
    given = "nope" if kind == "unknown name" else str(tmp_path / "somedir")
    if kind == "directory":
        Path(given).mkdir()
    done = cli("--dataset", given, root=root, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and given in done.stderr and "Traceback" not in done.stderr
    assert not (root / "smoke" / "runs").exists() or not any((root / "smoke" / "runs").iterdir())


def test_truncated_checkpoint_is_named_and_restart_completes(base, tmp_path, monkeypatch):
    """adbf048 loaded checkpoint.pt with weights_only=False and a cut file ended in an unpickling traceback.
    Now training.CheckpointError names the file; the CLI's --restart-bad-checkpoints sets it aside as
    checkpoint.bad.pt and the run completes (to the rows of an uninterrupted run)."""
    root = tmp_path / "results"
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    folder = folder_in(root, ITEMS)
    folder.mkdir(parents=True)
    whole = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(1000)}, "state": {"step": 3}}, whole)
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(training.CheckpointError, match=re.escape(str(checkpoint))):
        experiment.run(ITEMS, "smoke", quiet=True)
    assert not (folder / "rows.csv").exists()

    done = cli("--study", "layer_scan", "--models", "sasrec", "--restart-bad-checkpoints", root=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Set it aside as {training.BAD_CHECKPOINT}" in done.stdout
    # kept for inspection after the run finished (before this fix the end-of-run cleanup deleted it)
    assert (folder / training.BAD_CHECKPOINT).read_bytes() == whole.getvalue()[: len(whole.getvalue()) // 2]
    assert not (folder / "checkpoint.pt").exists()
    assert_same_values(rows_in(root, ITEMS), rows_in(base[0], ITEMS))


def test_truncated_item_table_stops_the_llm_run(base, tmp_path, monkeypatch):
    """adbf048 read item_embeddings.pt with torch.load and no check (an unpickling traceback, or, for a
    replaced file, an LLM trained on the wrong table). Now the manifest's sha256: DamagedRun naming it."""
    root = tmp_path / "results"
    copy_runs(base[0], root, [ITEMS])
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    table = folder_in(root, ITEMS) / "item_embeddings.pt"
    table.write_bytes(table.read_bytes()[:100])
    deeper = studies.e4srec(PROFILE, "synthetic", 2)
    with pytest.raises(experiment.DamagedRun, match=re.escape(str(table))):
        experiment.run(deeper, "smoke", quiet=True)
    assert not (folder_in(root, deeper) / "rows.csv").exists()


def test_not_a_hf_folder_as_backbone_is_said_before_the_item_table_trains(tmp_path, monkeypatch):
    """adbf048 trained the item table first and then failed inside transformers' AutoConfig. Now
    experiment.run checks the backbone spec (builders.check_backbone -> backbones.check_spec) before any
    dependency: BuildError saying the folder has no config.json, and no item-table run folder."""
    root = tmp_path / "results"
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 10)
    cfg = replace(CFG, model=replace(CFG.model, backbone=str(folder)))
    with pytest.raises(builders.BuildError, match=re.escape(str(folder)) + ".*no config.json"):
        experiment.run(cfg, "smoke")
    assert not folder_in(root, ITEMS).exists()
    with pytest.raises(builders.BuildError, match="neither"):
        experiment.run(replace(CFG, model=replace(CFG.model, backbone=str(tmp_path / "missing"))), "smoke")
    assert not folder_in(root, ITEMS).exists()


@pytest.mark.slow
def test_damaged_smollm2_cache_is_rebuilt(tmp_path, monkeypatch, capsys):
    """adbf048 trusted the cache's DONE file: a cut model.safetensors ended in safetensors' "incomplete
    metadata" traceback naming no file, on every later load. Now the folder is named, removed and built
    again from the GGUF (about 30 s on 2 cores), and the model loads."""
    from slmrec_lib import backbones, paths

    try:
        gguf = backbones.smollm2_gguf_path()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"SmolLM2 is not installed here: {exc}")
    shared = backbones.smollm2_cache_path(gguf)
    monkeypatch.setenv("SLMREC_CACHE_DIR", str(tmp_path / "cache"))
    folder = backbones.smollm2_cache_path(gguf)
    if (shared / "DONE").is_file():
        shutil.copytree(shared, folder)
    else:  # build it once here
        backbones.load_backbone("smollm2", layers=1)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, size // 5)
    model, _ = backbones.load_backbone("smollm2", layers=1)
    assert str(folder) in capsys.readouterr().out
    assert weights.stat().st_size == size and (folder / "DONE").is_file()
    assert len(model.layers) == 1 and paths.cache_dir() == tmp_path / "cache"


# ============================================================== less lost on a hard kill
KILL_STEPS_MIN = 2  # kill once a checkpoint of at least this many steps is written


@pytest.fixture(scope="module")
def killed(base, tmp_path_factory):
    """CFG started in a subprocess with a checkpoint every step (checkpoint_minutes=0) and plain progress
    lines on every step, killed with SIGKILL mid-training: (results root, the step it had reached, its
    stderr)."""
    root = tmp_path_factory.mktemp("killed") / "results"
    copy_runs(base[0], root, [ITEMS])
    script = (
        "from dataclasses import replace\n"
        "from slmrec_lib import experiment, studies\n"
        "from slmrec_lib.profiles import get_profile\n"
        "cfg = studies.e4srec(get_profile('smoke'), 'synthetic', 1)\n"
        "fast = replace(cfg, train=replace(cfg.train, checkpoint_minutes=0, progress=True, progress_seconds=0))\n"
        "assert fast.hash == cfg.hash\n"
        "experiment.run(fast, 'smoke')\n")
    env = dict(os.environ, SLMREC_RESULTS_DIR=str(root), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    checkpoint = folder_in(root) / "checkpoint.pt"
    with open(root.parent / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
        step, deadline = 0, time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if checkpoint.exists():
                try:
                    step = torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]["step"]
                except (RuntimeError, EOFError, KeyError, OSError):
                    step = 0  # replaced while we read it
                if step >= KILL_STEPS_MIN:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
        proc.wait(timeout=60)
    return root, step, (root.parent / "stderr.txt").read_text()


def test_sigkill_resumes_from_a_time_checkpoint_bit_identical(base, killed, monkeypatch, capsys):
    """adbf048 checkpointed only at validations (a smoke LLM run: at its last step), so a SIGKILL lost the
    whole training. Now `checkpoint_minutes` (an execution setting, same hash) writes one by time; the
    run resumes from it and ends with the rows of the uninterrupted run."""
    root, step, _ = killed
    assert step >= KILL_STEPS_MIN, "the subprocess ended before it could be killed mid-training"
    assert not (folder_in(root) / "rows.csv").exists()
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(root))
    resumed = experiment.run(CFG, "smoke")
    assert re.search(rf"resuming .*{CFG.hash} from step {step}/", capsys.readouterr().out)
    assert_same_values(resumed, base[1])


def test_progress_lines_without_a_terminal(killed):
    """adbf048 showed progress only as a tqdm bar on a terminal: a run under nohup or CI logged nothing
    for minutes. Now plain lines (epoch, step, loss, ETA) go to stderr when it is not a terminal."""
    lines = [l for l in killed[2].splitlines() if re.search(r"epoch \d+/\d+ step \d+/\d+ loss [\d.]+.* ETA \d", l)]
    assert len(lines) >= KILL_STEPS_MIN, killed[2][-2000:]


def test_max_len_cut_is_said_once_a_run(base, capsys):
    """adbf048 cut long histories to max_len silently. Now experiment.run prints one "[data] max_len"
    line for each run it trains (the item table and E4SRec_1 here) and none for a run read back."""
    lines = [l for l in base[2].splitlines() if l.startswith("[data] max_len")]
    assert len(lines) == 2, base[2]
    assert lines[1].startswith(f"[data] max_len {PROFILE.llm_params.max_len}, targets=last")
    assert re.search(r"\d+ rows lost \d+ older input items", lines[1])
    with results_at(base[0]):
        experiment.run(CFG, "smoke")
    assert "[data]" not in capsys.readouterr().out


def test_cpu_workers_keep_a_single_process_thread_count():
    """On a CPU the thread count changes float reductions, so workers must not split the cores: a run
    trained by a worker then gives the numbers a single process gives."""
    from slmrec_lib.run import worker_threads

    assert worker_threads(2, on_gpus=False) is None
    assert worker_threads(8, on_gpus=False) is None
    import os

    assert worker_threads(2, on_gpus=True) == str(max(1, (os.cpu_count() or 1) // 2))
    assert worker_threads(10 ** 6, on_gpus=True) == "1"
