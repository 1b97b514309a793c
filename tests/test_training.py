"""The shared training loop: it lowers the loss, restores the best weights, and resumes exactly."""

from __future__ import annotations

import json
import os
import signal

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
