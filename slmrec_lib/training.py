"""One training loop for every model of the book (SASRec, GRU4Rec, BERT4Rec, the LLM teacher and student).

`fit(model, examples, split, cfg, run_dir, protocol)` trains any `models.base.SeqRecommender` whose
`forward(batch)` returns `(loss, parts)`:

- device, bf16 / fp16 and data-parallel through `accelerate.Accelerator` (launch several processes with
  `accelerate launch` or `torchrun`; nothing here starts processes);
- AdamW over the parameters with `requires_grad`, cosine (or constant) schedule with linear warmup, gradient
  accumulation, gradient clipping;
- seeded shuffling: epoch `e` uses the permutation drawn from `seed + e`, so a resumed run sees the same
  batches as an uninterrupted one;
- validation with `evaluation.evaluate(..., stage="valid")` every `eval_every` steps (or once an epoch),
  early stopping after `patience` evaluations without improvement, best weights restored at the end;
- checkpoint and resume: `run_dir/checkpoint.pt` holds model (trainable parameters only when the model
  has frozen ones), optimizer, scheduler, step, RNG states, the best weights and metric so far, and the
  history. A run restarted with the same `run_dir` and config continues from there. Files are written to
  a temporary name and moved into place with `os.replace`, so an interruption never leaves a torn file.
- stop on a signal: in a single process, SIGTERM (e.g. from `timeout`) or SIGINT (Ctrl-C, a notebook's
  interrupt) lets the current optimizer step finish, writes a checkpoint and raises `TrainingInterrupted`;
  a signal during a validation abandons it and the resumed run validates first. So a time limit loses no
  training. A second SIGINT stops at once; further SIGTERMs are ignored. (Several processes keep the
  default handlers: one rank stopping alone would leave the others waiting in a collective.)

Batch size is global: `batch_size` examples per forward pass summed over all processes, so the
effective batch of one optimizer step is `batch_size * grad_accum` whatever the number of GPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"
CONFIG_FILE = "train_config.json"
RESULT_FILE = "train_result.json"
# Config fields that may change between an interrupted run and its resumption (they do not change
# what is computed).
_RESUME_FREE_FIELDS = ("progress", "num_workers", "eval_batch_size")


class TrainingInterrupted(KeyboardInterrupt):
    """`fit` stopped on SIGTERM or SIGINT after writing its checkpoint; calling it again resumes there."""

    def __init__(self, signum: int, step: int, total: int, checkpoint: Path):
        self.signum, self.step, self.total, self.checkpoint = signum, step, total, checkpoint
        super().__init__(f"training stopped by {signal.Signals(signum).name} at step {step}/{total}; "
                         f"{checkpoint} holds it and the same call resumes from there")


class _StopValidation(BaseException):
    """Raised by the signal handler inside a validation, which is then abandoned (and redone on resume)."""


@contextlib.contextmanager
def _stop_on_signals(enabled: bool):
    """While training: the first SIGTERM / SIGINT is recorded in the yielded dict (`signum`) for the loop
    to act on at the end of the step, or stops a running validation; a second SIGINT raises at once."""
    flag: dict[str, Any] = {"signum": None, "in_eval": False}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["signum"] is not None:
            # already stopping: a second Ctrl-C stops at once, a repeated SIGTERM (a worker gets one
            # from `timeout` and one from its parent process) waits for the checkpoint
            if signum == signal.SIGINT:
                raise KeyboardInterrupt("second SIGINT: stopped without a checkpoint")
            return
        flag["signum"] = signum
        if flag["in_eval"]:
            raise _StopValidation()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
    eval_batch_size: int = 512  # users per batch during validation
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (accelerate autocast; fp16 adds loss scaling)
    seed: int = 0  # seeds shuffling, dropout and the validation subset
    num_workers: int = 0  # DataLoader worker processes (0 = batches built in the main process)
    checkpoint_every: int | None = None  # optimizer steps between checkpoints; None = at each validation
    progress: bool = True  # show a tqdm progress bar

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


class _Rows(torch.utils.data.Dataset):
    """Indexable by a list of row indices: returns the batch dict for those rows."""

    def __init__(self, examples: dict[str, torch.Tensor]):
        self.examples = examples

    def __len__(self) -> int:
        return len(next(iter(self.examples.values())))

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(rows, dtype=torch.long)
        return {k: v[idx] for k, v in self.examples.items()}


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This process's share of each global batch of epoch `epoch` (the last, short batch is kept)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    batches = []
    for start in range(0, n, batch_size):
        rows = perm[start : start + batch_size]
        share = rows[rank::world]
        if len(share) == 0:  # a tiny last batch with fewer rows than processes: repeat a row
            share = rows[:1]
        batches.append(share.tolist())
    return batches


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


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace onto `path`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    if n is None:
        return None
    n_users = split.n_users
    if n >= n_users:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_users, size=n, replace=False))


def _validate(model, split, protocol, max_len, cfg, users) -> dict[str, float]:
    from slmrec_lib.evaluation import evaluate  # imported late: evaluation imports models

    kwargs = {"users": users} if users is not None else {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = evaluate(model, split, protocol, stage="valid", max_len=max_len,
                           batch_size=cfg.eval_batch_size, **kwargs)
    model.train(was_training)
    return {k: float(v) for k, v in metrics.items()}


def _accelerator(mixed_precision: str):
    """An `Accelerator`; accelerate keeps one global state a process, so a later fit with another
    mixed_precision (a notebook training in bf16, then in fp32) resets it instead of failing."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state()  # keeps the process group (PartialState) as it is
    return Accelerator(mixed_precision=mixed_precision)


def fit(
    model: nn.Module,
    examples: dict[str, torch.Tensor],
    split: Any | None,
    cfg: TrainConfig,
    run_dir: Path | str,
    protocol: Any | None = None,
) -> TrainResult:
    """Train `model` on `examples` (dict of equally long tensors, e.g. `input`/`target` [N, L]).

    `split` is the `data.Split` for validation (None: no validation, the last weights are kept);
    `protocol` the `evaluation.EvalProtocol` of the validation (default: 1 + 999 sampled negatives,
    seed 0). Returns a `TrainResult`; the model ends with its best weights, in eval mode, on the
    accelerator's device.
    """
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(examples.values())))
    if any(len(v) != n for v in examples.values()):
        raise ValueError(f"all tensors in `examples` must have the same length, got "
                         f"{ {k: len(v) for k, v in examples.items()} }")
    if n == 0:
        raise ValueError("`examples` is empty: nothing to train on")
    if split is not None and protocol is None:
        from slmrec_lib.evaluation import EvalProtocol

        protocol = EvalProtocol(kind="sampled", n_negatives=999, seed=0)
    max_len = examples["input"].shape[1] if "input" in examples else None

    accelerator = _accelerator(cfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.batch_size < world:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the number of processes {world}")
    torch.manual_seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)

    batches_per_epoch = math.ceil(n / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    eval_every = cfg.eval_every or steps_per_epoch
    ckpt_every = cfg.checkpoint_every or eval_every

    names = _trainable_names(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameter with requires_grad: nothing to train")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _lr_schedule(optimizer, cfg.warmup_steps, total_steps, cfg.schedule)

    # ---- resume ---------------------------------------------------------------------------------
    cfg_dict = dataclasses.asdict(cfg)
    state: dict[str, Any] = {
        "step": 0, "micro": 0, "best_metric": None, "best_step": 0, "best_weights": None,
        "bad_evals": 0, "history": [], "train_seconds": 0.0, "train_cpu_seconds": 0.0, "eval_seconds": 0.0, "examples": 0,
        "done": False, "stopped_early": False, "loss_sum": 0.0, "loss_count": 0, "parts_sum": {},
        "pending_eval": False,  # a validation is due at this step (set when a signal interrupted it)
    }
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        # a field newer than the checkpoint counts as its default
        saved = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | ckpt["cfg"]
        changed = [k for k in cfg_dict if k not in _RESUME_FREE_FIELDS and saved.get(k) != cfg_dict[k]]
        if changed:
            raise ValueError(
                f"{ckpt_path} was written with a different TrainConfig ({', '.join(changed)} differ: "
                f"{ {k: saved.get(k) for k in changed} } there, { {k: cfg_dict[k] for k in changed} } now). "
                "Use a fresh run_dir, or delete the checkpoint to start again."
            )
        _load_weights(model, ckpt["model"], names)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state.update(ckpt["state"])
        _set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
        accelerator.print(f"resuming {run_dir} from step {state['step']}/{total_steps}")
    if accelerator.is_main_process:
        _atomic_write_text(json.dumps(cfg_dict, indent=2) + "\n", run_dir / CONFIG_FILE)

    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)
    valid_users = _validation_users(split, cfg.valid_users, cfg.seed) if split is not None else None

    def checkpoint() -> None:
        rng = gather_object([_rng_state()]) if world > 1 else [_rng_state()]
        if accelerator.is_main_process:
            atomic_torch_save({
                "cfg": cfg_dict,
                "model": _weights(raw_model, names),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": state,
                "rng": rng,
            }, ckpt_path)
        accelerator.wait_for_everyone()

    def validate(stop: dict[str, Any]) -> None:
        """One validation: record it, keep the best weights, count evaluations without improvement.
        A signal while it scores raises `_StopValidation` before anything here has changed the state."""
        t0 = time.perf_counter()
        entry: dict[str, Any] = {
            "step": state["step"], "epoch": state["micro"] / batches_per_epoch,
            "loss": state["loss_sum"] / max(1, state["loss_count"]),
            **{k: v / max(1, state["loss_count"]) for k, v in state["parts_sum"].items()},
            "lr": scheduler.get_last_lr()[0],
        }
        if split is not None:
            stop["in_eval"] = True
            try:
                metrics = _validate(raw_model, split, protocol, max_len, cfg, valid_users)
            finally:
                stop["in_eval"] = False
            if cfg.select_metric not in metrics:
                raise KeyError(f"select_metric {cfg.select_metric!r} is not among the validation metrics "
                               f"{sorted(metrics)}")
            entry.update({f"valid_{k}": v for k, v in metrics.items()})
            value = metrics[cfg.select_metric]
            if state["best_metric"] is None or value > state["best_metric"]:
                state["best_metric"], state["best_step"], state["bad_evals"] = value, state["step"], 0
                state["best_weights"] = _weights(raw_model, names)
            else:
                state["bad_evals"] += 1
                if cfg.patience is not None and state["bad_evals"] >= cfg.patience:
                    state["stopped_early"] = True
        # the running loss is reset only now: an abandoned validation leaves the state as it was
        state["loss_sum"], state["loss_count"], state["parts_sum"] = 0.0, 0, {}
        state["eval_seconds"] += time.perf_counter() - t0
        entry["seconds"] = state["train_seconds"]
        state["history"].append(entry)
        if cfg.progress and accelerator.is_main_process:
            shown = {k: round(v, 4) for k, v in entry.items() if isinstance(v, float)}
            tqdm.write(f"step {state['step']}: {shown}")

    def interrupted(signum: int) -> None:
        checkpoint()
        bar.close()
        raise TrainingInterrupted(signum, state["step"], total_steps, ckpt_path)

    def end_of_step(stop: dict[str, Any]) -> None:
        """The due validation (abandoned on a signal: the checkpoint then says it is still due), the
        end of training, the periodic checkpoint."""
        step = state["step"]
        if state["pending_eval"]:
            try:
                validate(stop)
            except _StopValidation:
                interrupted(stop["signum"])
            state["pending_eval"] = False
        if state["stopped_early"] or step >= total_steps:
            state["done"] = True
        if step % ckpt_every == 0 or state["done"]:
            checkpoint()

    # ---- the loop ---------------------------------------------------------------------------------
    dataset = _Rows(examples)
    model.train()
    bar = tqdm(total=total_steps, initial=state["step"], disable=not (cfg.progress and accelerator.is_main_process),
               desc=f"train {type(raw_model).__name__}", dynamic_ncols=True)
    with _stop_on_signals(world == 1) as stop:
        if state["pending_eval"]:  # the checkpoint was written by a signal inside a validation
            end_of_step(stop)
        t_start, cpu_start = time.perf_counter(), time.process_time()
        while not state["done"] and state["step"] < total_steps and not state["stopped_early"]:
            epoch, skip = divmod(state["micro"], batches_per_epoch)
            batches = _epoch_batches(n, cfg.batch_size, cfg.seed, epoch, rank, world)[skip:]
            # Its own generator: creating a loader must not draw from the global RNG (dropout), or a
            # resumed run would diverge from an uninterrupted one.
            loader = torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None,
                                                 num_workers=cfg.num_workers, generator=torch.Generator())
            for batch in loader:
                batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
                sync = (state["micro"] + 1) % cfg.grad_accum == 0 or (state["micro"] + 1) % batches_per_epoch == 0
                with accelerator.no_sync(model) if not sync and world > 1 else contextlib.nullcontext():
                    loss, parts = model(batch)
                    accelerator.backward(loss / cfg.grad_accum)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at step {state['step']}: lower lr, "
                                             "enable grad_clip or use mixed_precision='no'")
                state["micro"] += 1
                state["examples"] += len(batch[next(iter(batch))]) * world
                state["loss_sum"] += loss.item()
                state["loss_count"] += 1
                for k, v in parts.items():
                    state["parts_sum"][k] = state["parts_sum"].get(k, 0.0) + float(v)
                if not sync:
                    continue
                if cfg.grad_clip is not None:
                    accelerator.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                state["train_seconds"] += time.perf_counter() - t_start
                state["train_cpu_seconds"] += time.process_time() - cpu_start
                if state["step"] % eval_every == 0 or state["step"] >= total_steps:
                    state["pending_eval"] = True
                end_of_step(stop)
                if stop["signum"] is not None:
                    interrupted(stop["signum"])
                t_start, cpu_start = time.perf_counter(), time.process_time()
                if state["done"]:
                    break
    bar.close()
    if stop["signum"] is not None:  # came after the last step's check: the final checkpoint is written
        raise TrainingInterrupted(stop["signum"], state["step"], total_steps, ckpt_path)

    # ---- best weights back, result ------------------------------------------------------------------
    if state["best_weights"] is not None:
        _load_weights(raw_model, state["best_weights"], names)
    model.train(False)
    result = TrainResult(
        best_metric=state["best_metric"],
        best_step=state["best_step"] if split is not None else state["step"],
        steps=state["step"],
        history=state["history"],
        train_seconds=state["train_seconds"],
        train_cpu_seconds=state["train_cpu_seconds"],
        examples_per_second=state["examples"] / max(state["train_seconds"], 1e-9),
        eval_seconds=state["eval_seconds"],
        epochs=state["micro"] / batches_per_epoch,
        stopped_early=state["stopped_early"],
    )
    if accelerator.is_main_process:
        _atomic_write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n", run_dir / RESULT_FILE)
    return result
