"""One training loop for every model of the book (SASRec, GRU4Rec, BERT4Rec, the LLM teacher and student).

`fit(model, examples, split, cfg, run_dir, protocol)` trains any `models.base.SeqRecommender` whose
`forward(batch)` returns `(loss, parts)`:

- device, bf16 / fp16 and data-parallel through `accelerate.Accelerator` (launch several processes with
  `accelerate launch` or `torchrun`; nothing here starts processes);
- AdamW over the parameters with `requires_grad`, cosine (or constant) schedule with linear warmup, gradient
  accumulation, gradient clipping;
- seeding: a fresh run seeds torch, numpy and python `random` from `cfg.seed` (plus the process rank), so
  dropout does not depend on what ran before in the process; a resumed run restores the saved states;
- seeded shuffling: epoch `e` uses the permutation drawn from `seed` and `e`, so a resumed run sees the
  same batches as an uninterrupted one;
- batches: the model gets the rows of `examples` as a dict, plus `"row"`, a LongTensor of the indices of
  those rows in `examples`. A model with a method `prepare_training(examples, device, planned_rows)` has it called
  once, on its device, before its first step (fresh or resumed; its time counts as training time, and
  the random numbers it draws are put back, so it changes nothing that follows);
- gradient accumulation: an optimizer step takes `grad_accum` consecutive batches of an epoch (the
  epoch's last step what is left); each batch's mean loss is weighted by its share of the step's rows, so
  a step's gradient is that of the mean loss over all its rows (exactly one big batch for a loss that is
  a mean over rows, a short last batch included);
- validation with `evaluation.evaluate(..., stage="valid")` every `eval_every` steps (or once an epoch),
  early stopping after `patience` evaluations without improvement, best weights restored at the end;
- checkpoint and resume: `run_dir/checkpoint.pt` holds model (trainable parameters only when the model
  has frozen ones), optimizer, scheduler, the loop's `_State` (step, position, best weights and metric,
  history, seconds) and RNG states, all as tensors and plain Python values so it loads with
  `torch.load(weights_only=True)`. It is written every `checkpoint_every` steps (default: at each
  validation), every `checkpoint_minutes` of wall time (so a SIGKILL or an out-of-memory kill loses at
  most that), and at the end, atomically (temporary file, fsync, `os.replace`); temporary files a killed
  save left are removed when a run starts. A run restarted with the same `run_dir` and config
  continues from there; execution-only fields (`util.EXECUTION`) may change in between. A checkpoint
  that cannot be read raises `CheckpointError`, or is set aside as `checkpoint.bad.pt` with
  `on_bad_checkpoint="restart"` (the run then starts over).
- stop on a signal: in a single process, SIGTERM (e.g. from `timeout`) or SIGINT (Ctrl-C, a notebook's
  interrupt) lets the current optimizer step finish, writes a checkpoint and raises `TrainingInterrupted`;
  a signal during a validation abandons it and the resumed run validates first. So a time limit loses no
  training. A second SIGINT stops at once; further SIGTERMs are ignored. (Several processes keep the
  default handlers: one rank stopping alone would leave the others waiting in a collective.)
- progress: a tqdm bar on a terminal; otherwise (nohup, CI, papermill) a plain line to stderr at most
  every `progress_seconds` and at each validation,
  `[<name>] epoch e/E step s/S loss x.xxxx (parts) lr ... ETA mm:ss`; the same lines are appended to the
  file named by the environment variable `SLMREC_PROGRESS_LOG` when it is set.

Batch size is global: `batch_size` examples per forward pass summed over all processes, so the
effective batch of one optimizer step is `batch_size * grad_accum` whatever the number of GPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .util import (EXECUTION, atomic_torch_save, atomic_write_text, execution_fields, remove_stale_temps,
                   seeded_subset)

CHECKPOINT = "checkpoint.pt"
BAD_CHECKPOINT = "checkpoint.bad.pt"  # where on_bad_checkpoint="restart" moves an unreadable checkpoint
CONFIG_FILE = "train_config.json"
RESULT_FILE = "train_result.json"
PROGRESS_LOG_ENV = "SLMREC_PROGRESS_LOG"  # names a file that progress lines are appended to
CHECKPOINT_FORMAT = 2  # 2: RNG states as tensors and plain values (loads with weights_only=True)


# ---- configuration and result ------------------------------------------------------------------------

@dataclass
class TrainConfig:
    lr: float = 1e-3  # peak learning rate of AdamW
    batch_size: int = 256  # examples per forward pass, summed over all processes
    epochs: int = 10  # passes over the examples (the upper bound when max_steps is None)
    max_steps: int | None = None  # optimizer steps in all; None = epochs decide
    warmup_steps: int = 0  # linear warmup from 0 to lr, then the schedule below
    schedule: str = "cosine"  # "cosine": decay to 0 at the last step; "constant": stay at lr (S3-Rec / ICLRec)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    grad_accum: int = 1  # forward passes per optimizer step
    grad_clip: float | None = 1.0  # max global gradient norm; None = no clipping
    eval_every: int | None = None  # optimizer steps between validations; None = once an epoch
    patience: int | None = 5  # validations without improvement before stopping; None = never stop early
    select_metric: str = "MRR"  # validation metric that picks the best weights (higher is better)
    valid_users: int | None = None  # None = validate on all users, else a seeded subset of this many
    eval_batch_size: int = field(default=512, metadata=EXECUTION)  # users per batch during validation
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (accelerate autocast; fp16 adds loss scaling)
    seed: int = 0  # seeds shuffling, dropout and the validation subset
    num_workers: int = field(default=0, metadata=EXECUTION)  # DataLoader worker processes (0 = main process)
    # optimizer steps between checkpoints; None = at each validation
    checkpoint_every: int | None = field(default=None, metadata=EXECUTION)
    # also checkpoint when this many minutes of wall time passed since the last one; 0 = every step,
    # None = never by time
    checkpoint_minutes: float | None = field(default=2.0, metadata=EXECUTION)
    progress: bool = field(default=True, metadata=EXECUTION)  # show progress (tqdm bar or plain lines)
    # seconds between plain progress lines when stderr is not a terminal (and at each validation)
    progress_seconds: float = field(default=30.0, metadata=EXECUTION)

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        for name in ("batch_size", "epochs", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every", "checkpoint_every", "valid_users"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be None or >= 1, got {value}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes >= 0:
            raise ValueError(f"TrainConfig.checkpoint_minutes must be None or >= 0, got {self.checkpoint_minutes}")
        if not self.progress_seconds >= 0:
            raise ValueError(f"TrainConfig.progress_seconds must be >= 0, got {self.progress_seconds}")


@dataclass
class TrainResult:
    best_metric: float | None  # best validation value of cfg.select_metric (None without validation)
    best_step: int  # optimizer step whose weights were restored
    steps: int  # optimizer steps taken in all (over resumptions)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per validation
    train_seconds: float = 0.0  # wall time in training steps (validation excluded), over resumptions
    train_cpu_seconds: float = 0.0  # CPU time of this process in training steps (all its threads)
    examples_per_second: float = 0.0  # training examples processed per train second
    eval_seconds: float = 0.0  # wall time spent in validation
    epochs: float = 0.0  # passes over the examples (fractional when stopped inside an epoch)
    stopped_early: bool = False  # True when patience ran out


class TrainingInterrupted(KeyboardInterrupt):
    """`fit` stopped on SIGTERM or SIGINT after writing its checkpoint; calling it again resumes there."""

    def __init__(self, signum: int, step: int, total: int, checkpoint: Path):
        self.signum, self.step, self.total, self.checkpoint = signum, step, total, checkpoint
        super().__init__(f"training stopped by {signal.Signals(signum).name} at step {step}/{total}; "
                         f"{checkpoint} holds it and the same call resumes from there")


class CheckpointError(RuntimeError):
    """A run's checkpoint file cannot be read (cut short by a kill, a full disk, or not a checkpoint)."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(
            f"{path} cannot be read as a training checkpoint ({reason}). A kill or a full disk during an "
            "older save can leave such a file. Delete it to start this run over (its training so far is "
            "lost), or call fit(..., on_bad_checkpoint='restart') to set it aside and start over."
        )


# ---- the state a checkpoint keeps ----------------------------------------------------------------------

@dataclass
class _State:
    """Everything about a run's progress besides weights, optimizer, scheduler and RNG: saved in every
    checkpoint (as a dict under "state") and restored on resume."""

    step: int = 0  # optimizer steps taken
    micro: int = 0  # forward passes taken (over epochs): epoch = micro // batches_per_epoch
    best_metric: float | None = None  # best validation value so far
    best_step: int = 0  # the step of best_metric
    best_weights: dict[str, torch.Tensor] | None = None  # saved weights of best_step (on the CPU)
    bad_evals: int = 0  # validations since the last improvement
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation
    train_seconds: float = 0.0  # wall time in training steps
    train_cpu_seconds: float = 0.0  # CPU time in training steps
    eval_seconds: float = 0.0  # wall time in validations
    examples: int = 0  # training rows processed (all processes)
    done: bool = False  # nothing left to do (last step taken or patience ran out)
    stopped_early: bool = False  # patience ran out
    loss_sum: float = 0.0  # sum of step losses since the last validation
    loss_count: int = 0  # steps in loss_sum
    parts_sum: dict[str, float] = field(default_factory=dict)  # sums of the loss parts, the same way
    pending_eval: bool = False  # a validation is due at this step (set when a signal interrupted it)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # shallow: no tensor copies


@dataclass(frozen=True)
class _Plan:
    """The sizes of a run, fixed by the examples, the config and the number of processes."""

    n: int  # training examples
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int  # epochs the run needs (some only partly when max_steps ends it)
    eval_every: int
    checkpoint_every: int

    @classmethod
    def of(cls, n: int, cfg: TrainConfig) -> "_Plan":
        batches = math.ceil(n / cfg.batch_size)
        steps_per_epoch = math.ceil(batches / cfg.grad_accum)
        total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
        eval_every = cfg.eval_every or steps_per_epoch
        return cls(n, batches, steps_per_epoch, total, math.ceil(total / steps_per_epoch), eval_every,
                   cfg.checkpoint_every or eval_every)


@dataclass
class _Run:
    """What the steps of one `fit` call share: fixed inputs and the objects being trained."""

    cfg: TrainConfig
    plan: _Plan
    accelerator: Any
    model: nn.Module  # as prepared by accelerate (DDP-wrapped with several processes)
    raw_model: nn.Module  # the model itself
    optimizer: Any
    scheduler: Any
    params: list[nn.Parameter]  # the trainable parameters
    names: set[str] | None  # names of the trainable parameters when some are frozen (what is saved)
    examples: dict[str, torch.Tensor]
    split: Any | None
    protocol: Any
    valid_users: np.ndarray | None
    max_len: int | None
    ckpt_path: Path
    cfg_dict: dict[str, Any]
    progress: "_Progress"
    last_checkpoint: float = 0.0  # time.monotonic() of the last checkpoint written (or of the start)

    @property
    def world(self) -> int:
        return self.accelerator.num_processes


# ---- signals -------------------------------------------------------------------------------------------

class _StopValidation(BaseException):
    """Raised by the signal handler inside a validation, which is then abandoned (and redone on resume)."""


@dataclass
class _Stop:
    signum: int | None = None  # the first SIGTERM / SIGINT received
    in_eval: bool = False  # a validation is scoring (a signal then abandons it)


@contextlib.contextmanager
def _stop_on_signals(enabled: bool):
    """While training: the first SIGTERM / SIGINT is recorded in the yielded `_Stop` for the loop to act
    on at the end of the step, or stops a running validation; a second SIGINT raises at once."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum is not None:
            # already stopping: a second Ctrl-C stops at once, a repeated SIGTERM (a worker gets one
            # from `timeout` and one from its parent process) waits for the checkpoint
            if signum == signal.SIGINT:
                raise KeyboardInterrupt("second SIGINT: stopped without a checkpoint")
            return
        stop.signum = signum
        if stop.in_eval:
            raise _StopValidation()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ---- the loop ------------------------------------------------------------------------------------------

def fit(
    model: nn.Module,
    examples: dict[str, torch.Tensor],
    split: Any | None,
    cfg: TrainConfig,
    run_dir: Path | str,
    protocol: Any | None = None,
    *,
    name: str | None = None,
    on_bad_checkpoint: str = "raise",
) -> TrainResult:
    """Train `model` on `examples` (dict of equally long tensors, e.g. `input`/`target` [N, L]).

    `split` is the `data.Split` for validation (None: no validation, the last weights are kept);
    `protocol` the `evaluation.EvalProtocol` of the validation (default: 1 + 999 sampled negatives,
    seed 0). `name` prefixes the progress lines (default: the model's class and the run folder's name).
    `on_bad_checkpoint`: "raise" (`CheckpointError` for an unreadable `checkpoint.pt`) or "restart" (set
    it aside as `checkpoint.bad.pt` and train from the start). Returns a `TrainResult`; the model ends
    with its best weights, in eval mode, on the accelerator's device.
    """
    if on_bad_checkpoint not in ("raise", "restart"):
        raise ValueError(f"on_bad_checkpoint must be 'raise' or 'restart', got {on_bad_checkpoint!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = _Plan.of(_count_examples(examples), cfg)
    if protocol is None:
        from slmrec_lib.evaluation import EvalProtocol  # imported late: evaluation imports models

        protocol = EvalProtocol("sampled", n_negatives=999, seed=0)

    accelerator = _accelerator(cfg.mixed_precision)
    if cfg.batch_size < accelerator.num_processes:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the number of processes "
                         f"{accelerator.num_processes}")
    _seed_everything(cfg.seed + accelerator.process_index)
    names = _trainable_names(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameter with requires_grad: nothing to train")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _lr_schedule(optimizer, cfg.warmup_steps, plan.total_steps, cfg.schedule)

    ckpt_path, cfg_dict = run_dir / CHECKPOINT, dataclasses.asdict(cfg)
    if accelerator.is_main_process:
        remove_stale_temps(run_dir)  # left by a save that a hard kill cut short
    state = _resume(ckpt_path, cfg_dict, model, names, optimizer, scheduler, accelerator, plan,
                    on_bad_checkpoint)
    if accelerator.is_main_process:
        atomic_write_text(json.dumps(cfg_dict, indent=2) + "\n", run_dir / CONFIG_FILE)
    accelerator.wait_for_everyone()

    prepared, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(prepared)
    run = _Run(
        cfg=cfg, plan=plan, accelerator=accelerator, model=prepared, raw_model=raw_model,
        optimizer=optimizer, scheduler=scheduler, params=params, names=names, examples=examples,
        split=split, protocol=protocol,
        valid_users=_validation_users(split, cfg.valid_users, cfg.seed) if split is not None else None,
        max_len=examples["input"].shape[1] if "input" in examples else None, ckpt_path=ckpt_path,
        cfg_dict=cfg_dict, last_checkpoint=time.monotonic(),
        progress=_Progress(cfg, plan, name or f"{type(raw_model).__name__} {run_dir.name}", state,
                           accelerator.is_main_process),
    )

    dataset = _Rows(examples)
    with _stop_on_signals(run.world == 1) as stop, run.progress:  # the bar is closed however it ends
        if state.pending_eval:  # the checkpoint was written by a signal inside a validation
            _end_of_step(run, state, stop)
        if not state.done:
            _prepare_model(run, state)
        run.model.train()
        while not state.done:
            epoch, position = divmod(state.micro, plan.batches_per_epoch)
            steps = _epoch_steps(plan.n, cfg, epoch, run.accelerator.process_index, run.world)
            steps = steps[position // cfg.grad_accum:]  # a checkpoint is always at the end of a step
            batches = iter(_loader(dataset, [rows for step in steps for rows, _ in step], cfg.num_workers))
            for step in steps:
                t0, cpu0 = time.perf_counter(), time.process_time()
                _train_step(run, state, [(next(batches), global_rows) for _, global_rows in step])
                state.train_seconds += time.perf_counter() - t0
                state.train_cpu_seconds += time.process_time() - cpu0
                if state.step % plan.eval_every == 0 or state.step >= plan.total_steps:
                    state.pending_eval = True
                run.progress.step(state, run.scheduler.get_last_lr()[0])
                _end_of_step(run, state, stop)
                if stop.signum is not None:
                    _interrupt(run, state, stop.signum)
                if state.done:
                    break
    if stop.signum is not None:  # came after the last step's check: the final checkpoint is written
        raise TrainingInterrupted(stop.signum, state.step, plan.total_steps, ckpt_path)
    return _finish(run, state, run_dir)


def _train_step(run: _Run, state: _State, group: list[tuple[dict[str, torch.Tensor], int]]) -> None:
    """One optimizer step over `group`, its micro-batches as (this process's batch, rows of the global
    batch). Each batch's loss is weighted by its share of the step's rows, so the gradient is that of the
    mean over all the step's rows; then clipping, AdamW and the schedule."""
    device, world = run.accelerator.device, run.world
    step_rows = sum(rows for _, rows in group)
    step_loss, step_parts = 0.0, {}
    for i, (batch, rows) in enumerate(group):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        weight = rows / step_rows
        syncs = i == len(group) - 1  # DDP all-reduces the gradients on the step's last backward only
        with run.accelerator.no_sync(run.model) if not syncs and world > 1 else contextlib.nullcontext():
            loss, parts = run.model(batch)
            run.accelerator.backward(loss * weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {state.step}: lower lr, "
                                     "enable grad_clip or use mixed_precision='no'")
        state.micro += 1
        state.examples += len(batch["row"]) * world
        step_loss += loss.item() * weight
        for k, v in parts.items():
            step_parts[k] = step_parts.get(k, 0.0) + float(v) * weight
    if run.cfg.grad_clip is not None:
        run.accelerator.clip_grad_norm_(run.params, run.cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    state.loss_sum += step_loss
    state.loss_count += 1
    for k, v in step_parts.items():
        state.parts_sum[k] = state.parts_sum.get(k, 0.0) + v


def _end_of_step(run: _Run, state: _State, stop: _Stop) -> None:
    """The due validation (abandoned on a signal: the checkpoint then says it is still due), the end of
    training, the checkpoint (every `checkpoint_every` steps, every `checkpoint_minutes`, at the end)."""
    if state.pending_eval:
        try:
            _validate(run, state, stop)
        except _StopValidation:
            _interrupt(run, state, stop.signum)
        state.pending_eval = False
    if state.stopped_early or state.step >= run.plan.total_steps:
        state.done = True
    if state.step % run.plan.checkpoint_every == 0 or state.done or _checkpoint_time_due(run):
        _save_checkpoint(run, state)


def _validate(run: _Run, state: _State, stop: _Stop) -> None:
    """One validation: record it, keep the best weights, count evaluations without improvement.
    A signal while it scores raises `_StopValidation` before anything here has changed the state."""
    t0 = time.perf_counter()
    count = max(1, state.loss_count)
    entry: dict[str, Any] = {
        "step": state.step, "epoch": state.micro / run.plan.batches_per_epoch,
        "loss": state.loss_sum / count, **{k: v / count for k, v in state.parts_sum.items()},
        "lr": run.scheduler.get_last_lr()[0],
    }
    if run.split is not None:
        stop.in_eval = True
        try:
            metrics = _score_validation(run)
        finally:
            stop.in_eval = False
        if run.cfg.select_metric not in metrics:
            raise KeyError(f"select_metric {run.cfg.select_metric!r} is not among the validation metrics "
                           f"{sorted(metrics)}")
        entry.update({f"valid_{k}": v for k, v in metrics.items()})
        value = metrics[run.cfg.select_metric]
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
            state.best_weights = _weights(run.raw_model, run.names)
        else:
            state.bad_evals += 1
            if run.cfg.patience is not None and state.bad_evals >= run.cfg.patience:
                state.stopped_early = True
    # the running loss is reset only now: an abandoned validation leaves the state as it was
    state.loss_sum, state.loss_count, state.parts_sum = 0.0, 0, {}
    state.eval_seconds += time.perf_counter() - t0
    entry["seconds"] = state.train_seconds
    state.history.append(entry)
    run.progress.validation(state, entry, run.cfg.select_metric)


def _score_validation(run: _Run) -> dict[str, float]:
    from slmrec_lib.evaluation import evaluate  # imported late: evaluation imports models

    kwargs = {"users": run.valid_users} if run.valid_users is not None else {}
    model = run.raw_model
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = evaluate(model, run.split, run.protocol, stage="valid", max_len=run.max_len,
                           batch_size=run.cfg.eval_batch_size, **kwargs)
    model.train(was_training)
    return {k: float(v) for k, v in metrics.items()}


def _checkpoint_time_due(run: _Run) -> bool:
    """Whether `checkpoint_minutes` passed since the last checkpoint; the main process decides for all
    (every process must take part in a checkpoint, which gathers their RNG states)."""
    minutes = run.cfg.checkpoint_minutes
    if minutes is None:
        return False
    due = time.monotonic() - run.last_checkpoint >= 60.0 * minutes
    if run.world > 1:
        from accelerate.utils import broadcast_object_list

        due = broadcast_object_list([due])[0]
    return due


def _save_checkpoint(run: _Run, state: _State) -> None:
    from accelerate.utils import gather_object

    rng = gather_object([_rng_state()]) if run.world > 1 else [_rng_state()]
    if run.accelerator.is_main_process:
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "cfg": run.cfg_dict,
            "model": _weights(run.raw_model, run.names),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "state": state.to_dict(),
            "rng": rng,
        }, run.ckpt_path)
    run.accelerator.wait_for_everyone()
    run.last_checkpoint = time.monotonic()


def _interrupt(run: _Run, state: _State, signum: int) -> None:
    _save_checkpoint(run, state)
    run.progress.close()
    raise TrainingInterrupted(signum, state.step, run.plan.total_steps, run.ckpt_path)


def _resume(ckpt_path: Path, cfg_dict: dict[str, Any], model: nn.Module, names: set[str] | None,
            optimizer, scheduler, accelerator, plan: _Plan, on_bad_checkpoint: str) -> _State:
    """A fresh `_State`, or the one of `ckpt_path` with the model, optimizer, scheduler and RNG states
    restored from it. A config that differs there in a field that changes results is refused."""
    if not ckpt_path.exists():
        return _State()
    try:
        ckpt = _load_checkpoint(ckpt_path)
    except CheckpointError as err:
        if on_bad_checkpoint == "raise":
            raise
        accelerator.wait_for_everyone()  # every process has tried to read it before it moves
        if accelerator.is_main_process:
            os.replace(ckpt_path, ckpt_path.with_name(BAD_CHECKPOINT))
        accelerator.print(f"{err}\nSet it aside as {BAD_CHECKPOINT}; training {ckpt_path.parent} from the start")
        return _State()
    # a field newer than the checkpoint counts as its default
    saved = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | ckpt["cfg"]
    free = execution_fields(TrainConfig)
    changed = [k for k in cfg_dict if k not in free and saved.get(k) != cfg_dict[k]]
    if changed:
        raise ValueError(
            f"{ckpt_path} was written with a different TrainConfig ({', '.join(changed)} differ: "
            f"{ {k: saved.get(k) for k in changed} } there, { {k: cfg_dict[k] for k in changed} } now). "
            "Use a fresh run_dir, or delete the checkpoint to start again."
        )
    _load_weights(model, ckpt["model"], names)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rank = accelerator.process_index
    _set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
    state = _State(**ckpt["state"])
    accelerator.print(f"resuming {ckpt_path.parent} from step {state.step}/{plan.total_steps}")
    return state


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict of `path`, loaded with `weights_only=True`; `CheckpointError` when the file is
    cut short, damaged, or not a checkpoint of this loop."""
    try:
        # format 1 stored numpy's RNG state as an array: allow just what that needs
        with torch.serialization.safe_globals(_NUMPY_RNG_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise  # the file may be fine: not for deleting
    except _UNREADABLE as err:
        first_line = (str(err).splitlines() or [""])[0][:200]
        raise CheckpointError(path, f"{type(err).__name__}: {first_line}") from err
    required = ("cfg", "model", "optimizer", "scheduler", "state", "rng")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in required):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(path, f"expected the entries {', '.join(required)}, found {found}")
    unknown = set(ckpt["state"]) - {f.name for f in dataclasses.fields(_State)}
    if unknown:
        raise CheckpointError(path, f"its state has entries this version does not know: {sorted(unknown)}")
    return ckpt


def _prepare_model(run: _Run, state: _State) -> None:
    """Call the model's `prepare_training(examples, device, planned_rows)` if it has one (e.g. to cache a
    frozen teacher's states), `planned_rows` the training rows the run still feeds (a cache over every
    row pays only when that is more than one pass); counted as training time, and the random numbers it
    draws are put back."""
    prepare = getattr(run.raw_model, "prepare_training", None)
    if prepare is None:
        return
    t0, cpu0 = time.perf_counter(), time.process_time()
    saved = _rng_state()
    steps_left = max(0, run.plan.total_steps - state.step)
    planned_rows = min(steps_left * run.cfg.batch_size * run.cfg.grad_accum,
                       math.ceil(steps_left / max(1, run.plan.steps_per_epoch)) * run.plan.n)
    prepare(run.examples, run.accelerator.device, planned_rows)
    _set_rng_state(saved)
    state.train_seconds += time.perf_counter() - t0
    state.train_cpu_seconds += time.process_time() - cpu0


def _finish(run: _Run, state: _State, run_dir: Path) -> TrainResult:
    """Best weights back into the model, eval mode, the result (also written to `train_result.json`)."""
    if state.best_weights is not None:
        _load_weights(run.raw_model, state.best_weights, run.names)
    run.model.train(False)
    result = TrainResult(
        best_metric=state.best_metric,
        best_step=state.best_step if run.split is not None else state.step,
        steps=state.step,
        history=state.history,
        train_seconds=state.train_seconds,
        train_cpu_seconds=state.train_cpu_seconds,
        examples_per_second=state.examples / max(state.train_seconds, 1e-9),
        eval_seconds=state.eval_seconds,
        epochs=state.micro / run.plan.batches_per_epoch,
        stopped_early=state.stopped_early,
    )
    if run.accelerator.is_main_process:
        atomic_write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n", run_dir / RESULT_FILE)
    return result


# ---- batches -------------------------------------------------------------------------------------------

class _Rows(torch.utils.data.Dataset):
    """Indexable by a list of row indices: returns the batch dict for those rows, with `row` (their
    indices)."""

    def __init__(self, examples: dict[str, torch.Tensor]):
        self.examples = examples

    def __len__(self) -> int:
        return len(next(iter(self.examples.values())))

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(rows, dtype=torch.long)
        return {**{k: v[idx] for k, v in self.examples.items()}, "row": idx}


def _count_examples(examples: dict[str, torch.Tensor]) -> int:
    if "row" in examples:
        raise ValueError("`examples` has a tensor named 'row': that name is the batch's row indices, which "
                         "fit adds itself; rename it")
    n = len(next(iter(examples.values())))
    if any(len(v) != n for v in examples.values()):
        raise ValueError(f"all tensors in `examples` must have the same length, got "
                         f"{ {k: len(v) for k, v in examples.items()} }")
    if n == 0:
        raise ValueError("`examples` is empty: nothing to train on")
    return n


def _epoch_steps(n: int, cfg: TrainConfig, epoch: int, rank: int, world: int) -> list[list[tuple[list[int], int]]]:
    """Epoch `epoch` as optimizer steps: each a list of its micro-batches as (this process's share of the
    global batch, the global batch's row count). A global batch is `batch_size` consecutive rows of the
    epoch's seeded permutation (the last, short one is kept); a step takes `grad_accum` consecutive
    batches, the epoch's last step what is left."""
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    batches = []
    for start in range(0, n, cfg.batch_size):
        rows = perm[start : start + cfg.batch_size]
        share = rows[rank::world]
        if len(share) == 0:  # a tiny last batch with fewer rows than processes: repeat a row
            share = rows[:1]
        batches.append((share.tolist(), len(rows)))
    return [batches[i : i + cfg.grad_accum] for i in range(0, len(batches), cfg.grad_accum)]


def _loader(dataset: _Rows, batches: list[list[int]], num_workers: int) -> torch.utils.data.DataLoader:
    # Its own generator: creating a loader must not draw from the global RNG (dropout), or a resumed run
    # would diverge from an uninterrupted one.
    return torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None, num_workers=num_workers,
                                       generator=torch.Generator())


# ---- progress ------------------------------------------------------------------------------------------

class _Progress:
    """What a person watching sees. On a terminal: a tqdm bar. Otherwise (nohup, CI, papermill): a plain
    line to stderr at most every `cfg.progress_seconds` and at each validation. With SLMREC_PROGRESS_LOG
    set, the same lines are appended to that file (terminal or not). Only the main process shows any."""

    def __init__(self, cfg: TrainConfig, plan: _Plan, name: str, state: _State, main: bool):
        self.plan, self.name, self.every = plan, name, cfg.progress_seconds
        on = cfg.progress and main
        tty = on and sys.stderr.isatty()
        self.to_stderr = on and not tty
        self.log_path = Path(os.environ[PROGRESS_LOG_ENV]) if on and os.environ.get(PROGRESS_LOG_ENV) else None
        if self.log_path is not None:
            try:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self.log_path.touch()
            except OSError as err:
                raise OSError(f"{PROGRESS_LOG_ENV}={self.log_path} cannot be written ({err}); point it at a "
                              "writable file or unset it") from err
        self.bar = None
        if tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=plan.total_steps, initial=state.step, desc=f"train {name}", dynamic_ncols=True)
        self.start, self.start_step = time.perf_counter(), state.step
        self.last_line: float | None = None  # perf_counter of the last plain line

    def step(self, state: _State, lr: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{state.loss_sum / max(1, state.loss_count):.4f}", refresh=False)
        due = self.last_line is None or time.perf_counter() - self.last_line >= self.every
        if due and not state.pending_eval:  # a due validation writes its own line
            self._line(self._head(state, lr))

    def validation(self, state: _State, entry: dict[str, Any], metric: str) -> None:
        if self.bar is not None:
            shown = {k: round(v, 4) for k, v in entry.items() if isinstance(v, float)}
            self.bar.write(f"step {state.step}: {shown}")
        loss = {k: v for k, v in entry.items() if k not in ("step", "epoch", "lr", "seconds")
                and not k.startswith("valid_")}
        text = self._head(state, entry["lr"], loss)
        if f"valid_{metric}" in entry:
            text += f" | valid {metric} {entry[f'valid_{metric}']:.4f} (best {state.best_metric:.4f} " \
                    f"at step {state.best_step})"
        self._line(text)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _head(self, state: _State, lr: float, loss: dict[str, float] | None = None) -> str:
        if loss is None:
            count = max(1, state.loss_count)
            loss = {"loss": state.loss_sum / count, **{k: v / count for k, v in state.parts_sum.items()}}
        parts = " ".join(f"{k} {v:.4f}" for k, v in loss.items() if k != "loss")
        epoch = max(0, state.micro - 1) // self.plan.batches_per_epoch + 1  # that of the last batch
        text = (f"[{self.name}] epoch {epoch}/{self.plan.epochs} step {state.step}/{self.plan.total_steps} "
                f"loss {loss.get('loss', float('nan')):.4f}")
        if parts:
            text += f" ({parts})"
        return text + f" lr {lr:.2e} ETA {self._eta(state)}"

    def _eta(self, state: _State) -> str:
        done = state.step - self.start_step
        if done <= 0:
            return "--:--"
        left = (time.perf_counter() - self.start) / done * (self.plan.total_steps - state.step)
        minutes, seconds = divmod(int(round(left)), 60)
        return f"{minutes:02d}:{seconds:02d}"

    def _line(self, text: str) -> None:
        self.last_line = time.perf_counter()
        if self.to_stderr:
            print(text, file=sys.stderr, flush=True)
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(text + "\n")


# ---- helpers -------------------------------------------------------------------------------------------

def _trainable_names(model: nn.Module) -> set[str] | None:
    """Names of the trainable parameters if some parameters are frozen, else None (save everything)."""
    params = dict(model.named_parameters())
    trainable = {k for k, p in params.items() if p.requires_grad}
    return None if len(trainable) == len(params) else trainable


def _weights(model: nn.Module, names: set[str] | None) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if names is not None:
        state = {k: v for k, v in state.items() if k in names}
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _load_weights(model: nn.Module, weights: dict[str, torch.Tensor], names: set[str] | None) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=names is None)
    if unexpected or (names is not None and names - set(weights)):
        raise RuntimeError(
            f"checkpoint does not match the model: unexpected {sorted(unexpected)[:5]}, "
            f"missing trainable {sorted(names - set(weights))[:5] if names else []}. "
            "Was the model built with a different config? Use a fresh run_dir."
        )


def _numpy_rng_globals() -> list[Any]:
    from numpy._core.multiarray import _reconstruct

    return [np.ndarray, np.dtype, _reconstruct, np.dtypes.UInt32DType]


_NUMPY_RNG_GLOBALS = _numpy_rng_globals()
# what torch.load raises on a cut-short or damaged file: empty (EOFError), not a zip archive or a missing
# record (RuntimeError), a zip cut short (OSError EINVAL), a torn record (ValueError, pickle errors),
# a global that weights_only refuses (UnpicklingError)
_UNREADABLE = (EOFError, RuntimeError, OSError, ValueError, KeyError, pickle.UnpicklingError)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also every CUDA device
    np.random.seed(seed)
    random.seed(seed)


def _rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and plain values (so a checkpoint loads with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        n = numpy_state
        numpy_state = (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                       n["cached_gaussian"])
    np.random.set_state(numpy_state)  # a tuple with an array: a checkpoint of format 1
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _lr_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int, kind: str):
    """Linear warmup to the peak lr over `warmup` steps, then half a cosine down to 0 at `total`
    (kind "cosine") or the peak lr to the end (kind "constant")."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _validation_users(split: Any, n: int | None, seed: int) -> np.ndarray | None:
    return seeded_subset(split.n_users, n, seed)


def _accelerator(mixed_precision: str):
    """An `Accelerator`; accelerate keeps one global state a process, so a later fit with another
    mixed_precision (a notebook training in bf16, then in fp32) resets it instead of failing."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state()  # keeps the process group (PartialState) as it is
    return Accelerator(mixed_precision=mixed_precision)
