"""The experiment runner: a run is a resolved config (`config.RunConfig`), named by its hash, trained once.

`run(cfg, profile)` trains and evaluates one model unless `results/<profile>/runs/<hash>/rows.csv`
already exists and checks out, and returns its tidy result rows. A run's dependencies (the SASRec whose
item embeddings the LLM models read, the teacher a student learns from) are runs of their own: `run`
trains them first and hands what they saved to the builder, which never trains. So an interrupted
`make reproduce` resumes where it stopped, notebooks share runs, and tables re-render in seconds.

A run folder holds `config.json` (the whole config and its hash), checkpoints while training
(training.fit resumes from them), the weight files (`model.pt`, a SASRec's `item_embeddings.pt`) with
their sha256 in `manifest.json`, checked before another run reads them, the per-user ranks of every
evaluation stage (`ranks.npz`, for paired tests) and, last, `rows.csv`, written atomically. Rows are
checked when read (every protocol x stage x metric present and finite): a damaged run is reported by
folder, counts as not done and is trained again, its damaged rows.csv kept beside under another name.

Several processes may share a results folder (`python -m slmrec_lib.run --workers N`): a run holds an
exclusive lock on its folder's `.lock` file while it trains, so no run is trained twice at once. By
default a second process waits for the lock; with `wait=False` (or `set_wait_for_busy_runs(False)`,
which also covers the dependencies a run starts) it raises `RunBusy` at once instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from functools import lru_cache
from pathlib import Path

try:  # POSIX file locks; elsewhere runs are not guarded against a second process
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

import numpy as np
import pandas as pd
import torch

from . import config, paths
from .builders import Artifacts, build_model, check_backbone
from .config import LLM_KINDS, DataConfig, RunConfig
from .data import (Preprocess, SequenceData, Split, leave_one_out, load_dataset, subset_users, synthetic,
                   train_examples, truncation_line, truncation_summary)
from .evaluation import EvalProtocol, metrics_from_ranks, rank_positives
from .profiles import Profile, get_profile
from .util import atomic_savez, atomic_torch_save, atomic_write_text, remove_stale_temps, seeded_subset, sha256_file

# columns of hashes and names, read as text (a hash of digits only, or "7729e10", would become a number)
TEXT_COLUMNS = {c: str for c in ("run_id", "config_hash", "git_sha", "item_run", "teacher_run", "data_content",
                                 "model", "label", "role", "backbone", "mode", "negatives")}
MANIFEST = "manifest.json"  # sha256 of every weight file a run saved, checked before another run reads it
INPUTS = "inputs.json"  # which weight files of other runs a run read: run hash and sha256 of each
RANKS = "ranks.npz"  # per-user ranks (and ties) of every protocol and stage, kept with the rows
EVAL_SUBSET_SEED = 12345  # seed of the evaluation user subset (`eval_users`)
# Rows an LLM forward takes when scoring on a CPU (`LLMRecConfig.score_batch_size`, execution-only), for
# a run that leaves it unset. Measured on this 2-core machine (E4SRec_8, SmolLM2, 128 Beauty test users,
# sampled 1 + 999): 2.0 s at 16 rows a forward against 2.4 s at 128 (2 threads, idle), ranks identical.
CPU_SCORE_ROWS = 16


# ------------------------------------------------------------------------------------------ helpers
def git_sha() -> str:
    """The checkout's commit; `SLMREC_GIT_SHA` names it where the tree travels without .git (a GPU host)."""
    if os.environ.get("SLMREC_GIT_SHA"):
        return os.environ["SLMREC_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@lru_cache(maxsize=8)
def get_data(cfg: DataConfig) -> SequenceData:
    """The dataset of a data config (cached in the process); a seeded user subset if asked."""
    if cfg.dataset == "synthetic":
        data = synthetic()
    else:
        pre = Preprocess.paper() if cfg.preprocess == "paper" else Preprocess.official_code()
        data = load_dataset(cfg.dataset, preprocess=pre)
    # NOTE: a user subset keeps the items' ids (the item table and the candidates cover the whole catalogue)
    return subset_users(data, cfg.max_users, cfg.subset_seed)


@lru_cache(maxsize=8)
def get_split(cfg: DataConfig) -> Split:
    return leave_one_out(get_data(cfg))


def _profile_name(profile: str | Profile) -> str:
    return profile.name if isinstance(profile, Profile) else profile


def run_dir(cfg: RunConfig, profile: str | Profile) -> Path:
    return paths.results_dir(_profile_name(profile)) / "runs" / cfg.hash


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------ checked files
class DamagedRun(RuntimeError):
    """A run folder's files are not what the run wrote: the message names the folder and the fault."""


def expected_metrics(protocol: EvalProtocol) -> set[str]:
    return set(metrics_from_ranks(np.zeros(1), protocol.ks))


def check_rows(cfg: RunConfig, frame: pd.DataFrame, where: Path) -> pd.DataFrame:
    """`frame` if it holds every (protocol, stage, metric) of `cfg` with a finite value, else DamagedRun."""
    need = {"protocol", "stage", "metric", "value"}
    if frame.empty or not need <= set(frame.columns):
        raise DamagedRun(f"{where}: no result rows (columns {sorted(frame.columns)})")
    if not np.isfinite(pd.to_numeric(frame["value"], errors="coerce")).all():
        raise DamagedRun(f"{where}: a metric value is missing or not finite")
    have = set(zip(frame.protocol, frame.stage, frame.metric))
    for protocol in cfg.eval_protocols:
        for stage in ("valid", "test"):
            lost = {(protocol.name, stage, m) for m in expected_metrics(protocol)} - have
            if lost:
                raise DamagedRun(f"{where}: rows of {len(lost)} metrics missing, e.g. {sorted(lost)[0]}")
    return frame


def read_rows(cfg: RunConfig, profile: str | Profile) -> pd.DataFrame:
    """The checked rows of a finished run (DamagedRun if they are damaged, FileNotFoundError if absent)."""
    path = run_dir(cfg, profile) / "rows.csv"
    try:
        frame = pd.read_csv(path, dtype=TEXT_COLUMNS)  # a hash such as "820814616398" is not a number
    except pd.errors.EmptyDataError:
        raise DamagedRun(f"{path}: empty file") from None
    except pd.errors.ParserError as exc:
        raise DamagedRun(f"{path}: not a readable CSV ({exc})") from None
    return check_rows(cfg, frame, path)


def is_done(cfg: RunConfig, profile: str | Profile) -> bool:
    """Whether the run has finished: its rows.csv, written last and atomically, exists and checks out.
    A damaged one is reported (by folder) and counts as not done."""
    if not (run_dir(cfg, profile) / "rows.csv").exists():
        return False
    try:
        read_rows(cfg, profile)
    except DamagedRun as exc:
        print(f"[run] damaged, counted as not done: {exc}", flush=True)
        return False
    return True


def save_weights(obj, folder: Path, name: str) -> None:
    """Save a weight file atomically and record its sha256 in the run's manifest."""
    path = folder / name
    atomic_torch_save(obj, path)
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).exists() else {}
    manifest[name] = sha256_file(path)
    atomic_write_text(json.dumps(manifest, indent=2, sort_keys=True), folder / MANIFEST)


def load_weights(dep: RunConfig, profile: str | Profile, name: str):
    """A weight file of a finished run, after checking it against the run's manifest."""
    folder = run_dir(dep, profile)
    path = folder / name
    if not path.exists():  # rows saved (e.g. committed to git) but the weights, never committed, are not here
        raise FileNotFoundError(
            f"run {dep.label} {dep.hash} ({dep.data.dataset}) has saved results but no weights: {path} is missing. "
            "Copy the run folder from the machine that trained it, or move the folder away so that the run is "
            "trained again (the runs that read the old weights keep their rows)."
        )
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).exists() else {}
    if name not in manifest:
        raise DamagedRun(f"{path}: not recorded in {folder / MANIFEST}, so it cannot be checked; move the folder "
                         "away to train the run again")
    if sha256_file(path) != manifest[name]:
        raise DamagedRun(f"{path}: its sha256 differs from the one recorded when the run saved it (damaged or "
                         "replaced); move the folder away to train the run again")
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------ running
class MissingResult(RuntimeError):
    pass


class RunBusy(RuntimeError):
    """Another process holds the run's lock: it is training that run now."""


_WAIT_FOR_BUSY_RUNS = True


def set_wait_for_busy_runs(wait: bool) -> None:
    """Whether `run` (and the dependency runs it starts) waits for a run another process is training
    (True, the default) or raises `RunBusy` at once (False: a worker then takes other work)."""
    global _WAIT_FOR_BUSY_RUNS
    _WAIT_FOR_BUSY_RUNS = bool(wait)


@contextlib.contextmanager
def run_lock(folder: Path, wait: bool = True):
    """Hold the exclusive lock of a run folder; `wait=False` raises `RunBusy` if another process has it.
    The lock goes with its process, so a killed run never leaves a stale lock behind."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise RunBusy(f"run {folder.name} is being trained by another process") from None
        yield  # closing the file releases the lock


def run(cfg: RunConfig, profile: str | Profile, force: bool = False, quiet: bool = False,
        wait: bool | None = None, on_bad_checkpoint: str = "raise") -> pd.DataFrame:
    """Train and evaluate `cfg` (once) and return its tidy rows; see the module docstring. Its
    dependencies (item embeddings, teacher) are run first, each as a run of its own.
    `wait`: whether to wait for another process training the same run (None: `set_wait_for_busy_runs`).
    `on_bad_checkpoint`: "raise" (training.CheckpointError names the damaged file) or "restart" (it is
    set aside and the run starts over)."""
    prof = get_profile(profile)
    folder = run_dir(cfg, prof)
    if not force and is_done(cfg, prof):
        return _labelled(read_rows(cfg, prof), cfg)
    if prof.gpu_required and cfg.model.kind in LLM_KINDS and not torch.cuda.is_available():
        raise MissingResult(
            f"{cfg.label} ({cfg.hash}) has no saved result in {folder.parent} and profile "
            f"{prof.name!r} trains its LLM models only on a GPU. Run `python -m slmrec_lib.run --profile "
            f"{prof.name}` on a GPU machine and copy its results/ here, or use PROFILE=cpu / smoke."
        )
    check_backbone(cfg)  # a backbone that cannot load is said before any dependency trains
    for dep in config.dependencies(cfg):
        run(dep, prof, quiet=quiet, wait=wait, on_bad_checkpoint=on_bad_checkpoint)
    with run_lock(folder, _WAIT_FOR_BUSY_RUNS if wait is None else wait):
        if not force and is_done(cfg, prof):  # finished by the process that held the lock
            return _labelled(read_rows(cfg, prof), cfg)
        remove_stale_temps(folder)
        _set_aside_damaged(folder)
        return _labelled(_train_and_evaluate(cfg, prof, folder, quiet, on_bad_checkpoint), cfg)


def execution_settings(cfg: RunConfig, device: str) -> RunConfig:
    """`cfg` with the execution-only settings this device runs faster with; the same hash, the same
    numbers. On a CPU an E4SRec / SLMRec run that leaves `score_batch_size` unset scores
    `CPU_SCORE_ROWS` rows a forward (validation and evaluation: 250-500 users at once are slower a row)."""
    if device != "cpu" or cfg.model.kind not in ("e4srec", "slmrec") or cfg.model.params.score_batch_size is not None:
        return cfg
    return config.with_execution(cfg, score_batch_size=CPU_SCORE_ROWS)  # checks the hash is unchanged


def _labelled(frame: pd.DataFrame, cfg: RunConfig) -> pd.DataFrame:
    """Rows with the display label of the config they were asked for (a run shared by two roles, e.g.
    the cpu profile's SASRec and its item table, is shown under the asking one's label)."""
    return frame.assign(model=cfg.label, label=cfg.label)


def _set_aside_damaged(folder: Path) -> None:
    """A damaged rows.csv is renamed (kept for inspection), so that the run is trained again."""
    rows = folder / "rows.csv"
    if rows.exists():
        aside = folder / f"rows.csv.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(rows, aside)
        print(f"[run] {rows} was damaged; kept as {aside.name}, training the run again", flush=True)


def recorded_sha256(dep: RunConfig, prof: Profile, name: str) -> str:
    """The sha256 that run `dep` recorded for its weight file `name` when it saved it."""
    return json.loads((run_dir(dep, prof) / MANIFEST).read_text())[name]


def _inputs(cfg: RunConfig, prof: Profile) -> dict:
    """The weight files a run reads (its item table's, its teacher's), each with the sha256 its own run
    recorded: a dependency trained again (same config, another machine) shows as another sha."""
    m = cfg.model
    out = {}
    for role, dep, name in (("item_table", m.item_run, "item_embeddings.pt"), ("teacher", m.teacher, "model.pt")):
        if dep is not None:
            out[role] = dict(run=dep.hash, file=name, sha256=recorded_sha256(dep, prof, name))
    return out


def training_twin(cfg: RunConfig, prof: Profile) -> RunConfig | None:
    """A finished run here that trained what `cfg` trains (`config.training_key`: the same config but for
    the protocols after the first) and saved its weights, or None. `cfg` then scores that run's weights
    instead of training them again: on the CPU training is deterministic, so the rows are the ones its
    own training would give (e.g. the depth controls' SASRec, scored also on shuffled histories)."""
    if cfg.train is None:
        return None
    key = config.training_key(cfg)
    for path in sorted((paths.results_dir(prof.name) / "runs").glob("*/config.json")):
        folder = path.parent
        if folder.name == cfg.hash or not (folder / "rows.csv").exists() or not (folder / "model.pt").exists():
            continue
        try:
            d = json.loads(path.read_text())
            if d.get("seed") != cfg.seed or d.get("model", {}).get("kind") != cfg.model.kind:
                continue  # a cheap filter before resolving the config
            other = config.from_dict(d)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            continue  # another layout or a damaged file: not a twin (its own run reports it)
        if other.hash == folder.name and config.training_key(other) == key:
            return other
    return None


def _teacher_state_store(cfg: RunConfig, prof: Profile, device: str):
    """The shared teacher states of an offline student trained on the CPU in fp32 (None otherwise)."""
    from .teacher_states import TeacherStateStore

    d = cfg.model.distill
    if (device != "cpu" or cfg.model.teacher is None or d is None or d.mode != "offline"
            or cfg.train.mixed_precision != "no" or d.share_teacher_states is False):
        return None
    return TeacherStateStore.for_teacher(paths.cache_dir() / "teacher_states", cfg.model.teacher.hash,
                                         recorded_sha256(cfg.model.teacher, prof, "model.pt"))


def _load_trained(model, twin: RunConfig, prof: Profile) -> None:
    """The trainable weights of `twin` (checked against its manifest) into `model`, built untrained."""
    weights = load_weights(twin, prof, "model.pt")
    trainable = {k for k, v in model.named_parameters() if v.requires_grad}
    if set(weights) != trainable:
        raise DamagedRun(f"{run_dir(twin, prof) / 'model.pt'} holds {len(weights)} tensors, not the model's "
                         f"{len(trainable)} trainable ones; move that run folder away to train it again")
    model.load_state_dict(weights, strict=False)


def _artifacts(cfg: RunConfig, prof: Profile) -> Artifacts:
    m = cfg.model
    return Artifacts(
        item_embeddings=load_weights(m.item_run, prof, "item_embeddings.pt") if m.item_run else None,
        teacher_weights=load_weights(m.teacher, prof, "model.pt") if m.teacher else None,
    )


def _train_and_evaluate(cfg: RunConfig, prof: Profile, folder: Path, quiet: bool,
                        on_bad_checkpoint: str = "raise") -> pd.DataFrame:
    rows_path = folder / "rows.csv"
    atomic_write_text(json.dumps(config.to_dict(cfg), indent=2), folder / "config.json")
    if not quiet:
        print(f"[run] {cfg.label} {cfg.hash} on {cfg.data.dataset}", flush=True)
    split = get_split(cfg.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(execution_settings(cfg, device), split, _artifacts(cfg, prof))
    inputs = _inputs(cfg, prof)  # read after _artifacts has checked each file against its manifest
    train_seconds, steps, best_step = 0.0, 0, 0
    twin = training_twin(cfg, prof)
    if twin is not None:  # the same training is done: score its weights (its training time and steps)
        if not quiet:
            print(f"[run] {cfg.label} {cfg.hash}: the weights of {twin.hash}, which trained the same config", flush=True)
        _load_trained(model, twin, prof)
        trained = read_rows(twin, prof).iloc[0]
        train_seconds, steps, best_step = float(trained.train_seconds), int(trained.steps), int(trained.best_step)
        inputs["weights"] = dict(run=twin.hash, file="model.pt", sha256=recorded_sha256(twin, prof, "model.pt"))
    if inputs:
        atomic_write_text(json.dumps(inputs, indent=2, sort_keys=True), folder / INPUTS)
    if twin is None and cfg.train is not None:
        from .training import fit

        examples = train_examples(split, model.max_len, cfg.model.targets)
        if not quiet:  # what a max_len cut from the histories, said once a run
            print(f"[data] {truncation_line(truncation_summary(split, model.max_len, cfg.model.targets))}", flush=True)
        store = _teacher_state_store(cfg, prof, device)
        if store is not None:
            model.teacher_states = store
        result = fit(model, examples, split, cfg.train, folder, cfg.eval_protocols[0], name=f"{cfg.label} {cfg.hash[:8]}",
                     on_bad_checkpoint=on_bad_checkpoint)
        if store is not None:
            store.save()
            model.teacher_states = None
            if not quiet:
                print(f"[run] teacher states: {store.hits} batches read from {store.path.name}", flush=True)
        train_seconds, steps, best_step = result.train_seconds, result.steps, result.best_step
    model.to(device)
    trainable = {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}
    save_weights(trainable, folder, "model.pt")
    if cfg.model.kind == "sasrec":
        save_weights(model.item_embeddings().detach().cpu(), folder, "item_embeddings.pt")

    users = seeded_subset(split.n_users, cfg.eval_users, EVAL_SUBSET_SEED)
    n_users = split.n_users if users is None else len(users)
    base = dict(
        run_id=f"{prof.name}-{cfg.hash}", config_hash=cfg.hash, git_sha=git_sha(), profile=prof.name,
        dataset=cfg.data.dataset, n_users=n_users, model=cfg.label, **config.columns(cfg), seed=cfg.seed,
        device=device_name(), runs_per_device=int(os.environ.get("SLMREC_RUNS_PER_DEVICE", "1")),
        train_seconds=train_seconds, steps=steps, best_step=best_step,
        train_params=sum(v.numel() for v in trainable.values()),
        inference_params=inference_params(model),
    )
    rows, kept = [], {}
    stamp = f"{steps}-{best_step}-{train_seconds!r}"  # this training's result: another one's ranks are not reused
    for protocol in cfg.eval_protocols:
        for stage in ("valid", "test"):
            ranks, ties, seconds = _stage_ranks(model, split, protocol, stage, users, folder, stamp)
            kept[f"{protocol.name}/{stage}"], kept[f"{protocol.name}/{stage}/ties"] = ranks, ties
            # "ties": candidates scoring exactly the positive's score, a mean over users (bf16 scores tie)
            metrics = dict(metrics_from_ranks(ranks, protocol.ks), ties=float(np.mean(ties)) if len(ties) else 0.0)
            for metric, value in metrics.items():
                rows.append(dict(base, protocol=protocol.name, stage=stage, metric=metric, value=value,
                                 eval_seconds=seconds, eval_seconds_per_user=seconds / max(n_users, 1)))
    _save_ranks(folder, kept, users)
    if cfg.model.kind == "e4srec" and any(p.shuffle for p in cfg.protocols):  # the depth controls' runs (09)
        _save_layer_distances(model, split, folder)
    frame = check_rows(cfg, pd.DataFrame(rows), rows_path)
    atomic_write_text(frame.to_csv(index=False), rows_path)
    _cleanup_partial(folder)
    return read_rows(cfg, prof)  # the same frame whether the run was trained now or earlier


def _save_ranks(folder: Path, ranks: dict[str, np.ndarray], users: np.ndarray | None) -> None:
    """Per-user 0-based ranks of the positives, one array a "protocol/stage", for paired tests over
    users (compressed: about 100 KB a run on Beauty)."""
    arrays = {k.replace("/", "__"): np.asarray(v, dtype=np.int32) for k, v in ranks.items()}
    if users is not None:
        arrays["users"] = np.asarray(users, dtype=np.int32)
    atomic_savez(folder / RANKS, compressed=True, **arrays)


LAYER_DISTANCES = "layer_angular_distance.csv"
LAYER_DISTANCE_USERS = 1000  # test users (a seeded subset) whose last-token states are compared


def _save_layer_distances(model, split, folder: Path) -> None:
    """For an E4SRec run: the mean angular distance between the last-token states of layer l and
    layer l + n over test users (Gromov et al. 2024), computed here since weights do not leave a GPU
    host; beside the rows as layer_angular_distance.csv (columns layer, shift, distance, ...)."""
    from .data import eval_inputs
    from .models.llmrec import layer_angular_distances

    pick = seeded_subset(split.n_users, LAYER_DISTANCE_USERS, EVAL_SUBSET_SEED)
    inputs = eval_inputs(split, "test", model.max_len)[0]
    inputs = inputs if pick is None else inputs[torch.as_tensor(pick)]
    frame = layer_angular_distances(model, inputs)
    atomic_write_text(frame.to_csv(index=False), folder / LAYER_DISTANCES)


def load_ranks(cfg: RunConfig, profile: str | Profile) -> dict[str, np.ndarray] | None:
    """The per-user ranks a finished run kept ({"<protocol>/<stage>": ranks, "users": ...}), or None for
    a run that predates them."""
    return load_ranks_by_hash(cfg.hash, profile)


def load_ranks_by_hash(config_hash: str, profile: str | Profile) -> dict[str, np.ndarray] | None:
    """`load_ranks` of the run folder named `config_hash` (for callers that hold rows, not configs)."""
    path = paths.results_dir(_profile_name(profile)) / "runs" / config_hash / RANKS
    if not path.exists():
        return None
    with np.load(path) as saved:
        return {k.replace("__", "/"): saved[k] for k in saved.files}


def inference_params(model) -> int:
    """Parameters used at inference: everything but heads only used in training (L_ms heads, the teacher)."""
    fn = getattr(model, "inference_parameters", None)
    if fn is not None:
        return int(fn())
    return int(sum(p.numel() for p in model.parameters()))


def _stage_ranks(model, split, protocol: EvalProtocol, stage: str, users, folder: Path,
                 stamp: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The positives' ranks and ties of one (protocol, stage) and the seconds they took. They are kept in the run
    folder until rows.csv is written, so a run stopped inside its evaluation (P5 scores for minutes a
    stage) does not score the stages it finished again; `stamp` names the training they belong to."""
    path = folder / f"ranks-{protocol.name}-{stage}.npz"
    if path.exists():
        with np.load(path) as saved:
            if str(saved["stamp"]) == stamp and "ties" in saved.files:
                return saved["ranks"], saved["ties"], float(saved["seconds"])
    _sync()
    t0 = time.perf_counter()
    ranks, ties = rank_positives(model, split, protocol, stage, users=users, return_ties=True)
    _sync()
    seconds = time.perf_counter() - t0
    atomic_savez(path, ranks=ranks, ties=ties, seconds=seconds, stamp=stamp)
    return ranks, ties, seconds


def _cleanup_partial(folder: Path) -> None:
    """Remove what only an unfinished run needs: checkpoints and the ranks of finished stages. A
    checkpoint set aside as unreadable (training.BAD_CHECKPOINT) is kept for inspection."""
    from .training import BAD_CHECKPOINT

    for path in [*folder.glob("checkpoint*"), *folder.glob("ranks-*.npz")]:
        if path.is_file() and path.name != BAD_CHECKPOINT:
            path.unlink()


def run_all(cfgs: list[RunConfig], profile: str | Profile, progress: bool = True) -> pd.DataFrame:
    """Run every config (those already done are read back) and return all rows, each labelled as its
    config is (`config.label`).

    A profile that trains on a GPU (`gpu_required`), read on a machine without one, trains nothing:
    the finished runs are read back and the others are named, in a printed list and in
    `rows.attrs["missing"]` (label, dataset, seed, hash), so that a notebook shows what it lacks.
    """
    prof = get_profile(profile)
    frames = []
    todo = [c for c in cfgs if not is_done(c, prof)]
    read_only = prof.gpu_required and not torch.cuda.is_available()
    if todo and progress:
        verb = "not run yet (this profile trains on a GPU; see docs/gpu.md)" if read_only else "to run"
        print(f"{len(cfgs) - len(todo)} of {len(cfgs)} runs already done; {len(todo)} {verb}", flush=True)
        if read_only:
            for c in todo:
                print(f"  missing: {c.label} on {c.data.dataset}, seed {c.seed} ({c.hash})")
    skip = {c.hash for c in todo} if read_only else set()
    for cfg in cfgs:
        if cfg.hash not in skip:
            frames.append(run(cfg, prof))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["missing"] = [dict(label=c.label, dataset=c.data.dataset, seed=c.seed, hash=c.hash)
                            for c in todo] if read_only else []
    return out


def collect(profile: str | Profile) -> pd.DataFrame:
    """Every finished run's rows of a profile, whatever plan made them (for inspection; tables and
    notebooks read the runs of their plan with `run_all`)."""
    files = sorted((paths.results_dir(_profile_name(profile)) / "runs").glob("*/rows.csv"))
    return pd.concat([pd.read_csv(f, dtype=TEXT_COLUMNS) for f in files], ignore_index=True) if files else pd.DataFrame()


def load_config(folder: Path) -> RunConfig:
    """The RunConfig a run folder was made for (config.json, either layout)."""
    return config.from_dict(json.loads((folder / "config.json").read_text()))


def summarize(rows: pd.DataFrame, by=("dataset", "model"), stage: str = "test") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each metric, one row per (dataset, model, protocol)."""
    r = rows[rows.stage == stage]
    g = r.groupby(list(by) + ["protocol", "metric"])["value"]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    return out
