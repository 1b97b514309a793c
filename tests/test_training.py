"""The shared training loop: it lowers the loss, restores the best weights, and resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import torch
from torch import nn

from slmrec_lib.data import leave_one_out, synthetic, train_examples
from slmrec_lib.evaluation import EvalProtocol
from slmrec_lib.models.base import SeqRecommender
from slmrec_lib.training import CHECKPOINT, TrainConfig, TrainingInterrupted, fit

PROTOCOL = EvalProtocol("sampled", n_negatives=20, seed=0)


class Tiny(SeqRecommender):
    """Mean of the item embeddings so far (with dropout), tied output: small and quick to train."""

    def __init__(self, n_items: int, dim: int = 16, frozen_extra: bool = False):
        super().__init__()
        self.n_items, self.max_len = n_items, 10
        self.emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.mix = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.3)
        self.calls = 0
        self.fail_at: int | None = None  # raise on this forward call, to simulate an interruption
        self.signal_at: int | None = None  # send this process SIGTERM on this forward call
        self.scores = 0
        self.signal_at_score: int | None = None  # ... or on this scoring call (inside a validation)
        if frozen_extra:
            self.frozen = nn.Linear(dim, dim)
            self.frozen.requires_grad_(False)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        e = self.drop(self.emb(x))  # (B, L, D)
        count = (x > 0).cumsum(1).clamp(min=1).unsqueeze(-1)  # (B, L, 1)
        return self.mix(e.cumsum(1) / count)  # (B, L, D)

    def forward(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        if self.signal_at is not None and self.calls == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a worker gets one from `timeout` and one from its parent
        h = self._hidden(batch["input"])
        mask = batch["target"] > 0
        loss = nn.functional.cross_entropy(h[mask] @ self.emb.weight.T, batch["target"][mask])
        return loss, {"ce": loss.item()}

    def score_all(self, x):
        self.scores += 1
        if self.signal_at_score is not None and self.scores == self.signal_at_score:
            os.kill(os.getpid(), signal.SIGTERM)
        return self._hidden(x)[:, -1] @ self.emb.weight.T


@pytest.fixture(scope="module")
def toy():
    split = leave_one_out(synthetic(n_users=200, n_items=40, seed=0))
    return split, train_examples(split, max_len=10)


def _cfg(**kw) -> TrainConfig:
    base = dict(lr=1e-2, batch_size=32, epochs=2, progress=False, seed=3, patience=None)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_loss_and_writes_results(toy, tmp_path):
    split, ex = toy
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    res = fit(model, ex, split, _cfg(epochs=3), tmp_path, PROTOCOL)
    assert res.steps == 3 * 7  # 200 users (all have >= 2 training items), 7 batches of 32
    assert len(res.history) == 3  # once an epoch
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.best_metric == max(h["valid_MRR"] for h in res.history)
    assert res.examples_per_second > 0
    assert json.loads((tmp_path / "train_config.json").read_text())["seed"] == 3
    assert json.loads((tmp_path / "train_result.json").read_text())["steps"] == 21


def test_best_weights_restored(toy, tmp_path):
    split, ex = toy
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    res = fit(model, ex, split, _cfg(epochs=4, eval_every=3, lr=0.05), tmp_path, PROTOCOL)
    from slmrec_lib.evaluation import evaluate

    again = evaluate(model, split, PROTOCOL, stage="valid", max_len=10)["MRR"]
    assert again == pytest.approx(res.best_metric, abs=1e-9)


def test_early_stopping_stops(toy, tmp_path):
    split, ex = toy
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    res = fit(model, ex, split, _cfg(epochs=50, eval_every=1, patience=2, lr=0.0), tmp_path, PROTOCOL)
    # lr 0 never improves on the first validation: it stops after patience more validations
    assert res.stopped_early and res.steps == 3 and res.best_step == 1


# 7 batches an epoch, 2 a step, the odd one closes the epoch: steps end at passes 2, 4, 6, 7, 9...
@pytest.mark.parametrize("frozen, fail_at, saved_step", [(False, 8, 4), (True, 6, 2), (False, 5, 2)])
def test_resume_matches_uninterrupted(toy, tmp_path, frozen, fail_at, saved_step):
    split, ex = toy
    cfg = _cfg(epochs=2, checkpoint_every=1, eval_every=5, grad_accum=2, warmup_steps=2)

    torch.manual_seed(0)
    straight = Tiny(split.n_items, frozen_extra=frozen)
    res_straight = fit(straight, ex, split, cfg, tmp_path / "a", PROTOCOL)

    torch.manual_seed(0)
    broken = Tiny(split.n_items, frozen_extra=frozen)
    broken.fail_at = fail_at
    with pytest.raises(KeyboardInterrupt):
        fit(broken, ex, split, cfg, tmp_path / "b", PROTOCOL)
    ckpt = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)
    assert ckpt["state"]["step"] == saved_step
    if frozen:  # only trainable parameters are saved
        assert not any(k.startswith("frozen.") for k in ckpt["model"])

    torch.manual_seed(123)  # a fresh model with different weights: all must come from the checkpoint
    resumed = Tiny(split.n_items, frozen_extra=frozen)
    if frozen:
        resumed.frozen.load_state_dict(broken.frozen.state_dict())
    res_resumed = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)

    assert res_resumed.steps == res_straight.steps
    assert [h["step"] for h in res_resumed.history] == [h["step"] for h in res_straight.history]
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, msg=f"{name} differs after resume")
    assert res_resumed.best_metric == pytest.approx(res_straight.best_metric)


def _straight_and_signalled(toy, tmp_path, cfg, **trigger):
    """The same training uninterrupted and stopped by a SIGTERM (then resumed by a fresh model)."""
    split, ex = toy
    torch.manual_seed(0)
    straight = Tiny(split.n_items)
    res_straight = fit(straight, ex, split, cfg, tmp_path / "a", PROTOCOL)
    torch.manual_seed(0)
    stopped = Tiny(split.n_items)
    for k, v in trigger.items():
        setattr(stopped, k, v)
    with pytest.raises(TrainingInterrupted, match="SIGTERM") as info:
        fit(stopped, ex, split, cfg, tmp_path / "b", PROTOCOL)
    ckpt = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)
    torch.manual_seed(123)
    resumed = Tiny(split.n_items)
    res_resumed = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    return (straight, res_straight), (resumed, res_resumed), info.value, ckpt


def _assert_same_run(a, b):
    (model_a, res_a), (model_b, res_b) = a, b
    assert res_b.steps == res_a.steps
    assert [h["step"] for h in res_b.history] == [h["step"] for h in res_a.history]
    assert [h["loss"] for h in res_b.history] == pytest.approx([h["loss"] for h in res_a.history])
    assert res_b.best_metric == pytest.approx(res_a.best_metric)
    for (name, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=f"{name} differs after resume")


def test_sigterm_checkpoints_the_step_and_resumes(toy, tmp_path):
    # no periodic checkpoint before the end of epoch 1 (step 7): only the signal writes one, at step 3
    cfg = _cfg(epochs=2, warmup_steps=2)
    straight, resumed, stop, ckpt = _straight_and_signalled(toy, tmp_path, cfg, signal_at=3)
    assert stop.step == 3 and stop.total == 14
    assert ckpt["state"]["step"] == 3 and not ckpt["state"]["pending_eval"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after fit
    _assert_same_run(straight, resumed)


def test_sigterm_inside_validation_validates_again_on_resume(toy, tmp_path):
    # the first validation (step 7) scores 200 users in batches of 64: the signal comes in its 2nd batch
    cfg = _cfg(epochs=2, eval_batch_size=64)
    straight, resumed, stop, ckpt = _straight_and_signalled(toy, tmp_path, cfg, signal_at_score=2)
    assert stop.step == 7
    assert ckpt["state"]["step"] == 7 and ckpt["state"]["pending_eval"] and ckpt["state"]["history"] == []
    _assert_same_run(straight, resumed)


def test_a_second_sigint_stops_at_once(toy, tmp_path):
    split, ex = toy
    model = Tiny(split.n_items)
    real = model.forward

    def forward(batch):
        if model.calls == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(batch)

    model.forward = forward
    with pytest.raises(KeyboardInterrupt, match="second SIGINT") as info:
        fit(model, ex, split, _cfg(), tmp_path, PROTOCOL)
    assert not isinstance(info.value, TrainingInterrupted) and not (tmp_path / CHECKPOINT).exists()


def test_changed_config_refuses_to_resume(toy, tmp_path):
    split, ex = toy
    torch.manual_seed(0)
    fit(Tiny(split.n_items), ex, None, _cfg(max_steps=2), tmp_path)
    with pytest.raises(ValueError, match="different TrainConfig"):
        fit(Tiny(split.n_items), ex, None, _cfg(max_steps=2, lr=0.5), tmp_path)


def test_finished_run_is_not_trained_again(toy, tmp_path):
    split, ex = toy
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    first = fit(model, ex, split, _cfg(max_steps=4, eval_every=2), tmp_path, PROTOCOL)
    again_model = Tiny(split.n_items)
    again_model.fail_at = 1  # any forward pass would raise
    second = fit(again_model, ex, split, _cfg(max_steps=4, eval_every=2), tmp_path, PROTOCOL)
    assert second.steps == first.steps and second.best_metric == first.best_metric
    for p, q in zip(model.parameters(), again_model.parameters()):
        torch.testing.assert_close(p, q)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_mixed_precision_can_change_between_fits(toy, tmp_path):
    split, ex = toy
    for i, mp in enumerate(["bf16", "no"]):
        torch.manual_seed(0)
        res = fit(Tiny(split.n_items), ex, None, _cfg(max_steps=2, mixed_precision=mp), tmp_path / str(i))
        assert res.steps == 2 and np.isfinite(res.history[-1]["loss"])


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_schedule_after_warmup(toy, tmp_path, schedule):
    split, ex = toy
    res = fit(Tiny(split.n_items), ex, None, _cfg(max_steps=8, eval_every=1, warmup_steps=2, schedule=schedule,
                                                  lr=0.01), tmp_path)
    lrs = [h["lr"] for h in res.history]  # the lr of the next step, logged after each step
    assert lrs[0] == pytest.approx(0.01 * 2 / 3)  # warmup
    if schedule == "constant":
        assert lrs[2:] == pytest.approx([0.01] * 6)
    else:
        assert lrs[-1] == pytest.approx(0.0) and all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


# ---- execution-only fields, seeding ------------------------------------------------------------------

def test_execution_fields_are_marked_and_may_change_on_resume(toy, tmp_path):
    from slmrec_lib.util import execution_fields

    assert execution_fields(TrainConfig) == {"progress", "num_workers", "eval_batch_size", "checkpoint_every",
                                             "checkpoint_minutes", "progress_seconds"}
    split, ex = toy
    torch.manual_seed(0)
    first = fit(Tiny(split.n_items), ex, None, _cfg(max_steps=3, checkpoint_every=3), tmp_path)
    # only execution fields differ: the finished run is found, not refused and not trained again
    again = Tiny(split.n_items)
    again.fail_at = 1
    second = fit(again, ex, None, _cfg(max_steps=3, checkpoint_every=1, eval_batch_size=7,
                                       checkpoint_minutes=None, progress_seconds=5.0), tmp_path)
    assert second.steps == first.steps == 3


def test_a_fresh_fit_does_not_depend_on_earlier_random_draws(toy, tmp_path):
    import random

    split, ex = toy
    runs = []
    for i, draws in enumerate([0, 17]):
        torch.manual_seed(0)
        model = Tiny(split.n_items)  # the same initial weights (dropout 0.3 draws during training)
        torch.rand(draws)
        np.random.rand(draws)
        [random.random() for _ in range(draws)]
        res = fit(model, ex, None, _cfg(max_steps=5, eval_every=1), tmp_path / str(i))
        runs.append((model, res))
    assert [h["loss"] for h in runs[0][1].history] == [h["loss"] for h in runs[1][1].history]
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(p, q)


# ---- hard kills and damaged checkpoints --------------------------------------------------------------

@pytest.mark.parametrize("killed_at_call", [3, 10])
def test_time_checkpoint_survives_a_hard_kill(toy, tmp_path, killed_at_call):
    """checkpoint_minutes=0 checkpoints after every step; a kill in the middle of a step (no handler
    runs: simulated by an exception from forward) loses only that step, and the resumed run equals the
    uninterrupted one."""
    split, ex = toy
    # validation once an epoch (7 steps): without the time setting the only checkpoint would be at step 7
    cfg = _cfg(epochs=2, warmup_steps=2, checkpoint_minutes=0)
    torch.manual_seed(0)
    straight = Tiny(split.n_items)
    res_straight = fit(straight, ex, split, cfg, tmp_path / "a", PROTOCOL)

    torch.manual_seed(0)
    killed = Tiny(split.n_items)
    killed.fail_at = killed_at_call
    with pytest.raises(KeyboardInterrupt, match="simulated"):
        fit(killed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    ckpt = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)  # plain tensors and values only
    assert ckpt["state"]["step"] == killed_at_call - 1

    torch.manual_seed(123)
    resumed = Tiny(split.n_items)
    res_resumed = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    _assert_same_run((straight, res_straight), (resumed, res_resumed))
    assert [h["loss"] for h in res_resumed.history] == [h["loss"] for h in res_straight.history]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)  # bit-identical on the CPU


def test_temp_files_of_a_killed_save_are_removed(toy, tmp_path):
    split, ex = toy
    stale = tmp_path / f".{CHECKPOINT}.tmp4242abcd"
    stale.write_bytes(b"half a checkpoint")
    fit(Tiny(split.n_items), ex, None, _cfg(max_steps=1), tmp_path)
    assert not stale.exists()


def _damaged_checkpoint(toy, run_dir, how: str) -> None:
    split, ex = toy
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    model.fail_at = 4
    with pytest.raises(KeyboardInterrupt):
        fit(model, ex, split, _cfg(checkpoint_minutes=0), run_dir, PROTOCOL)
    path = run_dir / CHECKPOINT
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a checkpoint"}[how])


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
def test_a_damaged_checkpoint_is_a_clear_error(toy, tmp_path, how):
    from slmrec_lib.training import CheckpointError

    split, ex = toy
    _damaged_checkpoint(toy, tmp_path, how)
    with pytest.raises(CheckpointError, match="Delete it to start this run over") as info:
        fit(Tiny(split.n_items), ex, split, _cfg(checkpoint_minutes=0), tmp_path, PROTOCOL)
    assert info.value.path == tmp_path / CHECKPOINT and str(tmp_path / CHECKPOINT) in str(info.value)
    assert "on_bad_checkpoint='restart'" in str(info.value)


def test_restart_discards_a_bad_checkpoint_and_trains_from_the_start(toy, tmp_path):
    split, ex = toy
    cfg = _cfg(checkpoint_minutes=0)
    torch.manual_seed(0)
    fresh = Tiny(split.n_items)
    res_fresh = fit(fresh, ex, split, cfg, tmp_path / "a", PROTOCOL)
    _damaged_checkpoint(toy, tmp_path / "b", "truncated")
    bad = (tmp_path / "b" / CHECKPOINT).read_bytes()
    torch.manual_seed(0)
    restarted = Tiny(split.n_items)
    res_restarted = fit(restarted, ex, split, cfg, tmp_path / "b", PROTOCOL, on_bad_checkpoint="restart")
    assert (tmp_path / "b" / "checkpoint.bad.pt").read_bytes() == bad  # set aside, not lost
    _assert_same_run((fresh, res_fresh), (restarted, res_restarted))
    with pytest.raises(ValueError, match="on_bad_checkpoint"):
        fit(restarted, ex, split, cfg, tmp_path / "b", PROTOCOL, on_bad_checkpoint="ignore")


def test_a_checkpoint_of_the_first_format_still_resumes(toy, tmp_path):
    """Checkpoints written before the RNG states became plain values (numpy's as an array) load too."""
    from slmrec_lib import training

    split, ex = toy
    cfg = _cfg(epochs=1, checkpoint_minutes=0)
    torch.manual_seed(0)
    straight = Tiny(split.n_items)
    res_straight = fit(straight, ex, split, cfg, tmp_path / "a", PROTOCOL)
    torch.manual_seed(0)
    killed = Tiny(split.n_items)
    killed.fail_at = 4
    with pytest.raises(KeyboardInterrupt):
        fit(killed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    path = tmp_path / "b" / CHECKPOINT
    ckpt = torch.load(path, weights_only=True)
    for rng in ckpt["rng"]:  # back to the old layout: numpy's state as np.random.get_state() gives it
        n = rng["numpy"]
        rng["numpy"] = (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                        n["cached_gaussian"])
    del ckpt["format"]
    torch.save(ckpt, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # the case this covers: plain weights_only refuses it
    torch.manual_seed(123)
    resumed = Tiny(split.n_items)
    res_resumed = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    _assert_same_run((straight, res_straight), (resumed, res_resumed))
    assert training.CHECKPOINT_FORMAT == 2


# ---- progress without a terminal ----------------------------------------------------------------------

_LINE = (r"\[tiny-run abc123\] epoch (\d+)/2 step (\d+)/14 loss \d+\.\d{4} \(ce \d+\.\d{4}\) "
         r"lr \d\.\d\de[-+]\d\d ETA \d\d:\d\d")


def test_progress_lines_without_a_terminal(toy, tmp_path, capsys, monkeypatch):
    import re

    split, ex = toy
    log = tmp_path / "build" / "progress.log"
    monkeypatch.setenv("SLMREC_PROGRESS_LOG", str(log))
    fit(Tiny(split.n_items), ex, split, _cfg(progress=True, progress_seconds=0.0), tmp_path / "run", PROTOCOL,
        name="tiny-run abc123")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == log.read_text().strip().splitlines()  # the same lines in the log file
    steps = [re.fullmatch(_LINE + r"( \| valid MRR \d\.\d{4} \(best \d\.\d{4} at step \d+\))?", line) for line in lines]
    assert all(steps), [line for line, m in zip(lines, steps) if not m]
    assert [int(m.group(2)) for m in steps] == list(range(1, 15))  # one line a step
    assert [int(m.group(1)) for m in steps] == [1] * 7 + [2] * 7
    assert [bool(m.group(3)) for m in steps] == [i in (7, 14) for i in range(1, 15)]  # validations


def test_progress_lines_are_rate_limited(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SLMREC_PROGRESS_LOG", raising=False)
    split, ex = toy
    fit(Tiny(split.n_items), ex, split, _cfg(progress=True, progress_seconds=3600.0), tmp_path, PROTOCOL,
        name="tiny-run abc123")
    lines = capsys.readouterr().err.strip().splitlines()
    # the first step, then only the validations (steps 7 and 14)
    assert [line.split(" step ")[1].split("/")[0] for line in lines] == ["1", "7", "14"]
    assert "valid MRR" in lines[1] and "valid MRR" in lines[2]


# ---- what the model is handed -------------------------------------------------------------------------

class Recording(Tiny):
    """Tiny that records the `row` of each batch and, when it has `prepare_training`, each call of it."""

    def __init__(self, n_items: int, examples):
        super().__init__(n_items)
        self.examples, self.rows, self.prepared = examples, [], []

    def forward(self, batch):
        for k, v in self.examples.items():
            assert torch.equal(batch[k], v[batch["row"]]), k  # `row` names the rows the batch holds
        self.rows.append(batch["row"].tolist())
        return super().forward(batch)


class Preparing(Recording):
    def prepare_training(self, examples, device, planned_rows=None):
        assert next(self.parameters()).device == device and examples is self.examples
        self.prepared.append(self.calls)  # forward passes before the call
        torch.rand(1000)  # a prepare step that draws random numbers must not change training
        time.sleep(0.2)


def test_batches_carry_their_row_indices(toy, tmp_path):
    split, ex = toy
    model = Recording(split.n_items, ex)
    fit(model, ex, None, _cfg(epochs=2), tmp_path)
    assert all(isinstance(r, list) for r in model.rows)
    for epoch in (model.rows[:7], model.rows[7:]):
        assert sorted(i for rows in epoch for i in rows) == list(range(200))  # each row once an epoch
    assert model.rows[:7] != model.rows[7:]  # reshuffled
    with pytest.raises(ValueError, match="'row'"):
        fit(Tiny(split.n_items), {**ex, "row": torch.arange(200)}, None, _cfg(), tmp_path / "x")


def test_prepare_training_is_called_before_the_first_step_fresh_or_resumed(toy, tmp_path):
    split, ex = toy
    cfg = _cfg(epochs=1, checkpoint_minutes=0)
    torch.manual_seed(0)
    plain = Recording(split.n_items, ex)
    res_plain = fit(plain, ex, split, cfg, tmp_path / "a", PROTOCOL)

    torch.manual_seed(0)
    first = Preparing(split.n_items, ex)
    first.fail_at = 4
    with pytest.raises(KeyboardInterrupt):
        fit(first, ex, split, cfg, tmp_path / "b", PROTOCOL)
    assert first.prepared == [0]
    torch.manual_seed(123)
    resumed = Preparing(split.n_items, ex)
    res = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    assert resumed.prepared == [0]  # once, before the resumed run's first step
    assert res.train_seconds >= 0.4  # both calls' sleeps count as training time
    _assert_same_run((plain, res_plain), (resumed, res))  # its random draws changed nothing
    done = Preparing(split.n_items, ex)
    fit(done, ex, split, cfg, tmp_path / "b", PROTOCOL)
    assert done.prepared == []  # nothing left to train: not prepared


# ---- gradient accumulation ----------------------------------------------------------------------------

def test_accumulated_small_batches_equal_one_big_batch(toy, tmp_path):
    """batch 8 x 4 accumulated = batch 32: the same steps, loss curve and weights. 200 rows: each epoch
    ends with a short step of 8 rows (one small batch), weighted by its rows as in the big batch."""
    split, _ = toy
    ex = train_examples(split, max_len=10, targets="last")  # one target a row: the loss is a mean over rows
    runs = []
    for bs, accum in [(32, 1), (8, 4)]:
        torch.manual_seed(0)
        model = Tiny(split.n_items)
        model.drop.p = 0.0  # dropout masks drawn in four pieces would differ from one piece
        res = fit(model, ex, None, _cfg(epochs=2, batch_size=bs, grad_accum=accum, eval_every=1,
                                        warmup_steps=2, lr=0.02), tmp_path / str(bs))
        runs.append((model, res))
    (big, res_big), (small, res_small) = runs
    assert res_small.steps == res_big.steps == 14
    assert res_small.epochs == res_big.epochs == 2.0
    assert [h["loss"] for h in res_small.history] == pytest.approx([h["loss"] for h in res_big.history], rel=1e-5)
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=f"{name} differs")


def test_a_real_sigkill_loses_only_the_current_step(toy, tmp_path):
    """A separate process trains with a checkpoint every step and SIGKILLs itself (no handler, no
    cleanup) inside step 5; resumed here, the run equals an uninterrupted one."""
    import subprocess
    import sys
    from pathlib import Path

    split, ex = toy
    cfg = _cfg(epochs=2, checkpoint_minutes=0)
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, str(tmp_path / "b")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)["state"]["step"] == 4
    torch.manual_seed(0)
    straight = Tiny(split.n_items)
    res_straight = fit(straight, ex, split, cfg, tmp_path / "a", PROTOCOL)
    torch.manual_seed(123)
    resumed = Tiny(split.n_items)
    res_resumed = fit(resumed, ex, split, cfg, tmp_path / "b", PROTOCOL)
    _assert_same_run((straight, res_straight), (resumed, res_resumed))


def _killed_worker(run_dir: str) -> None:
    """The process of the SIGKILL test: the same data, model and config, killed in its 5th forward."""
    torch.set_num_threads(1)
    split = leave_one_out(synthetic(n_users=200, n_items=40, seed=0))
    ex = train_examples(split, max_len=10)
    torch.manual_seed(0)
    model = Tiny(split.n_items)
    real = model.forward

    def forward(batch):
        if model.calls == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(batch)

    model.forward = forward
    fit(model, ex, split, _cfg(epochs=2, checkpoint_minutes=0), run_dir, PROTOCOL)


if __name__ == "__main__":
    import sys

    _killed_worker(sys.argv[1])
