"""The experiment runner: a run is a resolved config, named by its hash, trained once.

`run(cfg, profile)` trains and evaluates one model unless `results/<profile>/runs/<hash>/rows.csv`
already exists, and returns its tidy result rows. Dependencies are runs of their own, found by their
hashes: the SASRec whose item table the LLM models read, the teacher a student learns from. So an
interrupted `make reproduce` resumes where it stopped, notebooks share runs, and tables re-render from
`collect(profile)` in seconds. A run folder holds `config.json`, checkpoints while training
(training.fit resumes from them), `model.pt` (trainable weights), the ranks of each evaluation stage
as it finishes and, last, `rows.csv`, written atomically: a half-finished run never looks finished,
and a run stopped during training or evaluation goes on from where it stopped.

Several processes may share a results folder (`python -m slmrec_lib.run --workers N`): a run holds an
exclusive lock on its folder's `.lock` file while it trains, so no run is trained twice at once. By
default a second process waits for the lock; with `wait=False` (or `set_wait_for_busy_runs(False)`,
which also covers the dependencies a run starts) it raises `RunBusy` at once instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

try:  # POSIX file locks; elsewhere runs are not guarded against a second process
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

import numpy as np
import pandas as pd
import torch

from . import paths
from .data import Preprocess, SequenceData, Split, leave_one_out, load_dataset, synthetic, train_examples
from .evaluation import EvalProtocol, metrics_from_ranks, rank_positives
from .profiles import Profile, get_profile

MODEL_KINDS = ("popularity", "sasrec", "gru4rec", "bert4rec", "e4srec", "slmrec", "p5")
LLM_KINDS = ("e4srec", "slmrec", "p5")
# Model params that set how much work one forward takes, not what is computed (P5's decoding rows a
# forward): left out of a run's hash, so they can follow the machine without training a run again.
EXECUTION_PARAMS = ("chunk_rows",)


# ------------------------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # a name from data.known_datasets() or a file path
    preprocess: str = "paper"  # "paper" | "official_code": filtering of ratings files
    max_users: int | None = None  # keep a seeded random subset of this many users (None: all)
    subset_seed: int = 0  # seed of that subset


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "sasrec"  # one of MODEL_KINDS
    params: dict = field(default_factory=dict)  # fields of the model's own config dataclass
    targets: str = "all"  # training rows: "all" | "last" | "prefixes" (data.train_examples)
    layers: int | None = None  # LLM kinds: decoder layers kept (None: all)
    backbone: str = "tiny"  # LLM kinds: "tiny[:layers]", "smollm2" or an HF folder
    item_table: dict = field(default_factory=dict)  # LLM kinds: {"params": SASRec fields, "train": TrainConfig fields}
    teacher_layers: int | None = None  # slmrec: depth of the teacher
    teacher_train: dict = field(default_factory=dict)  # slmrec: TrainConfig fields of the teacher run
    distill: dict = field(default_factory=dict)  # slmrec: DistillConfig fields


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: dict = field(default_factory=dict)  # TrainConfig fields (seed comes from `seed`)
    protocols: tuple[tuple[str, int, int], ...] = (("sampled", 999, 0),)  # (kind, negatives, seed); first selects
    seed: int = 0  # seeds model init, shuffling and dropout
    eval_users: int | None = None  # evaluate on a seeded subset of this many users (None: all)
    label: str = ""  # display name, e.g. "SLMRec_4<-8 +D_norm" (not part of the hash)

    def __post_init__(self):
        if self.model.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.model.kind!r}; known: {', '.join(MODEL_KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hash(self) -> str:
        d = self.to_dict()
        d.pop("label")
        d["model"]["params"] = {k: v for k, v in d["model"]["params"].items() if k not in EXECUTION_PARAMS}
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def eval_protocols(self) -> list[EvalProtocol]:
        return [EvalProtocol(k, n, s) for k, n, s in self.protocols]


def with_execution(cfg: RunConfig, **params) -> RunConfig:
    """`cfg` with other execution settings (`EXECUTION_PARAMS`): the same run, the same hash."""
    if unknown := set(params) - set(EXECUTION_PARAMS):
        raise ValueError(f"{sorted(unknown)} are not execution settings ({EXECUTION_PARAMS})")
    out = replace(cfg, model=replace(cfg.model, params={**cfg.model.params, **params}))
    assert out.hash == cfg.hash
    return out


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


def atomic_write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
    os.replace(tmp, path)


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


@lru_cache(maxsize=8)
def get_data(cfg: DataConfig) -> SequenceData:
    """The dataset of a data config (cached in the process); a seeded user subset if asked."""
    if cfg.dataset == "synthetic":
        data = synthetic()
    else:
        if cfg.preprocess not in ("paper", "official_code"):
            raise ValueError(f"unknown preprocessing {cfg.preprocess!r}: use 'paper' or 'official_code'")
        pre = Preprocess.paper() if cfg.preprocess == "paper" else Preprocess.official_code()
        data = load_dataset(cfg.dataset, preprocess=pre)
    if cfg.max_users and cfg.max_users < data.n_users:
        keep = np.sort(np.random.default_rng(cfg.subset_seed).choice(data.n_users, cfg.max_users, replace=False))
        # NOTE: items keep their ids (the item table and the candidates cover the whole catalogue)
        data = SequenceData(data.name, [data.sequences[u] for u in keep], data.n_items, data.titles,
                            dict(data.info, user_subset=cfg.max_users, subset_seed=cfg.subset_seed))
    return data


@lru_cache(maxsize=8)
def get_split(cfg: DataConfig) -> Split:
    return leave_one_out(get_data(cfg))


def run_dir(cfg: RunConfig, profile: str) -> Path:
    return paths.results_dir(profile) / "runs" / cfg.hash


def is_done(cfg: RunConfig, profile: str) -> bool:
    """Whether the run has finished (its rows.csv, written last and atomically, exists)."""
    return (run_dir(cfg, profile) / "rows.csv").exists()


def _eval_users(cfg: RunConfig, split: Split) -> np.ndarray | None:
    if cfg.eval_users is None or cfg.eval_users >= split.n_users:
        return None
    return np.sort(np.random.default_rng(12345).choice(split.n_users, cfg.eval_users, replace=False))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


def run(cfg: RunConfig, profile: str, force: bool = False, quiet: bool = False,
        wait: bool | None = None) -> pd.DataFrame:
    """Train and evaluate `cfg` (once) and return its tidy rows; see the module docstring.
    `wait`: whether to wait for another process training the same run (None: `set_wait_for_busy_runs`)."""
    prof = get_profile(profile)
    folder = run_dir(cfg, profile)
    rows_path = folder / "rows.csv"
    if rows_path.exists() and not force:
        return pd.read_csv(rows_path)
    if prof.gpu_required and cfg.model.kind in LLM_KINDS and not torch.cuda.is_available():
        raise MissingResult(
            f"{cfg.label or cfg.model.kind} ({cfg.hash}) has no saved result in {folder.parent} and profile "
            f"{profile!r} trains its LLM models only on a GPU. Run `python -m slmrec_lib.run --profile "
            f"{profile}` on a GPU machine and copy its results/ here, or use PROFILE=cpu / smoke."
        )
    with run_lock(folder, _WAIT_FOR_BUSY_RUNS if wait is None else wait):
        if rows_path.exists() and not force:  # finished by the process that held the lock
            return pd.read_csv(rows_path)
        return _train_and_evaluate(cfg, profile, folder, quiet)


def _train_and_evaluate(cfg: RunConfig, profile: str, folder: Path, quiet: bool) -> pd.DataFrame:
    rows_path = folder / "rows.csv"
    atomic_write_text(json.dumps(cfg.to_dict(), indent=2, default=str), folder / "config.json")
    if not quiet:
        print(f"[run] {cfg.label or cfg.model.kind} {cfg.hash} on {cfg.data.dataset}", flush=True)
    split = get_split(cfg.data)
    _seed_everything(cfg.seed)
    from .builders import build_model

    model = build_model(cfg, split, profile)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_seconds, steps, best_step = 0.0, 0, 0
    if cfg.model.kind != "popularity":
        from .training import TrainConfig, fit

        tcfg = TrainConfig(**dict(cfg.train, seed=cfg.seed))
        examples = train_examples(split, model.max_len, cfg.model.targets)
        result = fit(model, examples, split, tcfg, folder, cfg.eval_protocols[0])
        train_seconds, steps, best_step = result.train_seconds, result.steps, result.best_step
    model.to(device)
    trainable = {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}
    torch.save(trainable, folder / "model.pt")
    if cfg.model.kind == "sasrec":
        torch.save(model.item_table().detach().cpu(), folder / "item_table.pt")

    users = _eval_users(cfg, split)
    n_users = split.n_users if users is None else len(users)
    base = dict(
        run_id=f"{profile}-{cfg.hash}", config_hash=cfg.hash, git_sha=git_sha(), profile=profile,
        dataset=cfg.data.dataset, n_users=n_users, model=cfg.label or cfg.model.kind, kind=cfg.model.kind,
        layers=_layers(cfg, model), teacher_layers=cfg.model.teacher_layers, seed=cfg.seed,
        device=device_name(), runs_per_device=int(os.environ.get("SLMREC_RUNS_PER_DEVICE", "1")),
        train_seconds=train_seconds, steps=steps, best_step=best_step,
        train_params=sum(v.numel() for v in trainable.values()),
        inference_params=inference_params(model),
    )
    rows = []
    stamp = f"{steps}-{best_step}-{train_seconds!r}"  # this training's result: another one's ranks are not reused
    for protocol in cfg.eval_protocols:
        for stage in ("valid", "test"):
            ranks, seconds = _stage_ranks(model, split, protocol, stage, users, folder, stamp)
            for metric, value in metrics_from_ranks(ranks, protocol.ks).items():
                rows.append(dict(base, protocol=protocol.name, stage=stage, metric=metric, value=value,
                                 eval_seconds=seconds, eval_seconds_per_user=seconds / max(n_users, 1)))
    frame = pd.DataFrame(rows)
    atomic_write_text(frame.to_csv(index=False), rows_path)
    _cleanup_partial(folder)
    return pd.read_csv(rows_path)  # the same frame whether the run was trained now or earlier


def _layers(cfg: RunConfig, model) -> int | None:
    if cfg.model.kind in LLM_KINDS:
        return cfg.model.layers if cfg.model.layers is not None else getattr(model, "n_layers", None)
    return cfg.model.params.get("layers")


def inference_params(model) -> int:
    """Parameters used at inference: everything but heads only used in training (L_ms heads, the teacher)."""
    fn = getattr(model, "inference_parameters", None)
    if fn is not None:
        return int(fn())
    return int(sum(p.numel() for p in model.parameters()))


def _stage_ranks(model, split, protocol: EvalProtocol, stage: str, users, folder: Path,
                 stamp: str) -> tuple[np.ndarray, float]:
    """The positives' ranks of one (protocol, stage) and the seconds they took. They are kept in the run
    folder until rows.csv is written, so a run stopped inside its evaluation (P5 scores for minutes a
    stage) does not score the stages it finished again; `stamp` names the training they belong to."""
    path = folder / f"ranks-{protocol.name}-{stage}.npz"
    if path.exists():
        with np.load(path) as saved:
            if str(saved["stamp"]) == stamp:
                return saved["ranks"], float(saved["seconds"])
    _sync()
    t0 = time.perf_counter()
    ranks = rank_positives(model, split, protocol, stage, users=users)
    _sync()
    seconds = time.perf_counter() - t0
    tmp = folder / f".{path.stem}.tmp{os.getpid()}.npz"
    np.savez(tmp, ranks=ranks, seconds=seconds, stamp=stamp)
    os.replace(tmp, path)
    return ranks, seconds


def _cleanup_partial(folder: Path) -> None:
    """Remove what only an unfinished run needs: checkpoints and the ranks of finished stages."""
    for path in [*folder.glob("checkpoint*"), *folder.glob("ranks-*.npz")]:
        if path.is_file():
            path.unlink()


def run_all(cfgs: list[RunConfig], profile: str, progress: bool = True) -> pd.DataFrame:
    """Run every config (those already done are read back) and return all rows.

    A profile that trains on a GPU (`gpu_required`), read on a machine without one, trains nothing:
    the finished runs are read back and the others are named, in a printed list and in
    `rows.attrs["missing"]` (label, dataset, seed, hash), so that a notebook shows what it lacks.
    """
    frames = []
    todo = [c for c in cfgs if not is_done(c, profile)]
    read_only = get_profile(profile).gpu_required and not torch.cuda.is_available()
    if todo and progress:
        verb = "not run yet (this profile trains on a GPU; see docs/gpu.md)" if read_only else "to run"
        print(f"{len(cfgs) - len(todo)} of {len(cfgs)} runs already done; {len(todo)} {verb}", flush=True)
        if read_only:
            for c in todo:
                print(f"  missing: {c.label or c.model.kind} on {c.data.dataset}, seed {c.seed} ({c.hash})")
    skip = {c.hash for c in todo} if read_only else set()
    for cfg in cfgs:
        if cfg.hash in skip:
            continue
        frame = run(cfg, profile)
        frame["model"] = cfg.label or frame["model"]
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["missing"] = [dict(label=c.label or c.model.kind, dataset=c.data.dataset, seed=c.seed, hash=c.hash)
                            for c in todo] if read_only else []
    return out


def collect(profile: str) -> pd.DataFrame:
    """Every finished run's rows of a profile."""
    files = sorted((paths.results_dir(profile) / "runs").glob("*/rows.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def load_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def summarize(rows: pd.DataFrame, by=("dataset", "model"), stage: str = "test") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each metric, one row per (dataset, model, protocol)."""
    r = rows[rows.stage == stage]
    g = r.groupby(list(by) + ["protocol", "metric"])["value"]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    return out
