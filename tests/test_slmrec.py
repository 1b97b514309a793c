"""SLMRec student: configured terms logged and in the gradient, frozen/online teacher, errors, diagnostics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from slmrec_lib.backbones import tiny_backbone
from slmrec_lib.losses import cross_entropy, d_cos, d_norm
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig
from slmrec_lib.models.slmrec import DistillConfig, SLMRecStudent

N_ITEMS, D0, MAX_LEN = 30, 8, 6
SHORT_PROMPT = {"instruction": "History:", "response": "\nNext:"}  # the tiny tokenizer is per character


def table(seed=0):
    return torch.randn(N_ITEMS + 1, D0, generator=torch.Generator().manual_seed(seed))


def llmrec(layers, backbone_layers=4, seed=0, item_table=None, **cfg):
    backbone, tok = tiny_backbone(num_hidden_layers=backbone_layers)
    torch.manual_seed(seed)  # fresh LoRA and projections
    cfg = {"max_len": MAX_LEN, "lora_dropout": 0.0, "n_layers": layers, **SHORT_PROMPT, **cfg}
    return LLMRec(backbone, tok, table() if item_table is None else item_table, LLMRecConfig(**cfg))


def make(cfg=None, student_layers=2, teacher_layers=4, seed=0):
    """A 2-layer student of a 4-layer teacher (the first layers of one random tiny backbone)."""
    teacher = llmrec(teacher_layers, seed=100)
    with torch.no_grad():  # a "trained" teacher: LoRA B is 0 at init, give it some weight
        for n, p in teacher.named_parameters():
            if ".lora_B." in n:
                p.normal_(0, 0.5)
    student = llmrec(student_layers, seed=seed)
    return SLMRecStudent(student, teacher, cfg or DistillConfig(blocks=2))


def batch(seed=1, B=6):
    g = torch.Generator().manual_seed(seed)
    inp = torch.randint(1, N_ITEMS + 1, (B, MAX_LEN), generator=g)
    inp[0, :3] = 0  # a short, left-padded history
    tgt = torch.zeros(B, MAX_LEN, dtype=torch.long)
    tgt[:, -1] = torch.randint(1, N_ITEMS + 1, (B,), generator=g)
    return {"input": inp, "target": tgt}


def student_grads(model, b):
    model.zero_grad(set_to_none=True)
    loss, parts = model(b)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.student.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    return grads, parts, loss


def same(g1, g2):
    return all(torch.allclose(g1[k], g2[k], atol=1e-7, rtol=1e-5) for k in g1)


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (DistillConfig(blocks=2), {"ce", "d_cos", "d_norm", "ms"}),
        (DistillConfig(blocks=2, w_norm=0), {"ce", "d_cos", "ms"}),
        (DistillConfig(blocks=2, w_cos=0, w_ms=0), {"ce", "d_norm"}),
        (DistillConfig(blocks=1, w_ms=0), {"ce", "d_cos", "d_norm"}),
        (DistillConfig(blocks=2, mode="online"), {"ce", "d_cos", "d_norm", "ms", "teacher_ce"}),
    ],
)
def test_every_configured_term_is_logged_and_the_loss_is_their_weighted_sum(cfg, expected):
    model = make(cfg)
    assert set(model.distill_terms) == expected
    loss, parts = model(batch())
    assert set(parts) == expected
    w = {"ce": 1.0, "teacher_ce": 1.0, "d_cos": cfg.w_cos, "d_norm": cfg.w_norm, "ms": cfg.w_ms}
    assert loss.item() == pytest.approx(sum(w[k] * v for k, v in parts.items()), rel=1e-5)
    assert all(v > 0 for v in parts.values())
    assert len(model.ms_heads) == (cfg.blocks - 1 if cfg.w_ms > 0 else 0)


def test_terms_equal_the_loss_functions_on_the_matched_block_ends():
    model = make(DistillConfig(blocks=2, norm_squared=True))
    assert model.pairs == [(1, 2), (2, 4)]
    model.eval()
    b = batch()
    with torch.no_grad():
        _, parts = model(b)
        s = model.student.last_token_states(b["input"])
        t = model.teacher.last_token_states(b["input"])
        # the student CE is the plain E4SRec cross-entropy of the student
        assert parts["ce"] == pytest.approx(model.student(b)[0].item(), rel=1e-5)
        assert parts["d_cos"] == pytest.approx((d_cos(s[1], t[2]) + d_cos(s[2], t[4])).item(), rel=1e-5)
        assert parts["d_norm"] == pytest.approx(
            (d_norm(s[1], t[2], squared=True) + d_norm(s[2], t[4], squared=True)).item(), rel=1e-5)
        head_user = model.ms_heads[0](s[1])  # (B, d0): the one head reads the student's block-1 end
        logits = torch.cat([torch.full((len(head_user), 1), float("-inf")),
                            head_user @ model.student.item_embeddings.weight[1:].T], dim=1)
        assert parts["ms"] == pytest.approx(cross_entropy(logits, b["target"][:, -1]).item(), rel=1e-5)


@pytest.mark.parametrize("term", ["w_cos", "w_norm", "w_ms"])
def test_each_term_contributes_to_the_students_gradient(term):
    b = batch()
    full = make(DistillConfig(blocks=2))
    off = make(DistillConfig(blocks=2, **{term: 0.0}))
    off.load_state_dict(full.state_dict(), strict=False)  # same weights (off may lack the L_ms head)
    g_full, _, _ = student_grads(full, b)
    g_off, _, _ = student_grads(off, b)
    assert not same(g_full, g_off), f"switching {term} to 0 left the student's gradient unchanged"
    # doubling the weight changes it too (the term is scaled by its weight, not merely present)
    doubled = make(DistillConfig(blocks=2, **{term: 2 * getattr(DistillConfig(), term)}))
    doubled.load_state_dict(full.state_dict())
    g_double, _, _ = student_grads(doubled, b)
    assert not same(g_full, g_double)


def test_all_distillation_off_is_plain_e4srec_training():
    b = batch()
    model = make(DistillConfig(blocks=2, w_cos=0, w_norm=0, w_ms=0))
    g, parts, loss = student_grads(model, b)
    assert set(parts) == {"ce"}
    model.student.zero_grad(set_to_none=True)
    model.student(b)[0].backward()
    g_plain = {n: p.grad for n, p in model.student.named_parameters() if p.requires_grad}
    assert same(g, g_plain)


def test_offline_teacher_is_frozen_in_eval_mode_and_never_changes():
    from slmrec_lib.training import TrainConfig, fit

    model = make(DistillConfig(blocks=2))
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.student.training and not model.teacher.training
    g = torch.Generator().manual_seed(3)
    inp = torch.randint(1, N_ITEMS + 1, (24, MAX_LEN), generator=g)
    tgt = torch.zeros_like(inp)
    tgt[:, -1] = torch.randint(1, N_ITEMS + 1, (24,), generator=g)
    import tempfile

    with tempfile.TemporaryDirectory() as run_dir:
        result = fit(model, {"input": inp, "target": tgt}, None,
                     TrainConfig(lr=1e-2, batch_size=8, max_steps=4, progress=False), run_dir)
    assert result.steps == 4 and {"d_cos", "d_norm", "ms"} <= set(result.history[-1])
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f"teacher weight {k} changed in offline mode"
    changed = [k for k, v in model.student.state_dict().items() if not torch.equal(v, student_before[k])]
    assert any("lora_B" in k for k in changed) and any(k.startswith("score") for k in changed)


def test_online_mode_trains_the_teacher_on_its_own_cross_entropy():
    model = make(DistillConfig(blocks=2, mode="online"))
    before = {n: p.detach().clone() for n, p in model.teacher.named_parameters() if p.requires_grad}
    assert before, "online teacher has trainable parameters"
    model.train()
    assert model.teacher.training
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    for step in range(2):
        loss, parts = model(batch(seed=step))
        assert "teacher_ce" in parts
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(p, before[n]) for n, p in model.teacher.named_parameters() if n in before)


def test_online_distillation_terms_do_not_reach_the_teacher():
    model = make(DistillConfig(blocks=2, mode="online"))
    b = batch()
    loss, parts = model(b)
    loss.backward()
    g_all = {n: p.grad.clone() for n, p in model.teacher.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    model.teacher(b)[0].backward()  # the teacher's own CE alone
    for n, p in model.teacher.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(g_all[n], p.grad)


def test_inference_is_the_students_alone():
    model = make(DistillConfig(blocks=2))
    assert model.inference_parameters() == sum(p.numel() for p in model.student.parameters())
    assert model.inference_parameters() < sum(p.numel() for p in model.parameters())
    x = batch()["input"]
    torch.testing.assert_close(model.score_all(x), model.student.score_all(x))
    cand = torch.randint(1, N_ITEMS + 1, (len(x), 5))
    torch.testing.assert_close(model.score_candidates(x, cand), model.student.score_all(x).gather(1, cand))


def test_block_cosine_is_one_for_a_student_equal_to_its_teacher():
    teacher = llmrec(4, seed=100)
    student = llmrec(4, seed=5)
    student.load_state_dict(teacher.state_dict())
    model = SLMRecStudent(student, teacher, DistillConfig(blocks=4))
    rows = model.block_cosine(batch(B=7)["input"], batch_size=3)
    assert [(r["block"], r["student_layer"], r["teacher_layer"]) for r in rows] == [(i, i, i) for i in range(1, 5)]
    assert [r["normed"] for r in rows] == [False, False, False, True]
    for r in rows:
        assert r["cosine"] == pytest.approx(1.0, abs=1e-5)
    # a fresh student is not the teacher: below 1 at the last block end
    fresh = make(DistillConfig(blocks=2)).block_cosine(batch()["input"])
    assert len(fresh) == 2 and all(-1.0 <= r["cosine"] <= 1.0 for r in fresh) and fresh[-1]["cosine"] < 0.999


def test_a_failing_teacher_is_an_error_not_a_fallback(monkeypatch):
    model = make(DistillConfig(blocks=2))

    def broken(input):
        raise RuntimeError("teacher exploded")

    monkeypatch.setattr(model.teacher, "last_token_states", broken)
    with pytest.raises(RuntimeError, match="teacher exploded"):
        model(batch())


def test_configurations_that_cannot_be_computed_are_errors():
    with pytest.raises(ValueError, match="blocks >= 2"):
        DistillConfig(blocks=1)  # w_ms > 0 needs an intermediate block end
    with pytest.raises(ValueError, match="mode"):
        DistillConfig(mode="both")
    with pytest.raises(ValueError, match=">= 0"):
        DistillConfig(w_cos=-1.0)
    with pytest.raises(ValueError, match="cannot be cut"):
        make(DistillConfig(blocks=3))  # 3 blocks from a 2-layer student
    teacher = llmrec(4, seed=100)
    with pytest.raises(ValueError, match="item table"):
        SLMRecStudent(llmrec(2, item_table=table(seed=9)), teacher, DistillConfig(blocks=2))
    with pytest.raises(ValueError, match="max_len"):
        SLMRecStudent(llmrec(2, max_len=MAX_LEN + 1), teacher, DistillConfig(blocks=2))
    wide_backbone, tok = tiny_backbone(num_hidden_layers=2, hidden_size=48, intermediate_size=64)
    wide = LLMRec(wide_backbone, tok, table(), LLMRecConfig(max_len=MAX_LEN, **SHORT_PROMPT))
    with pytest.raises(ValueError, match="hidden size"):
        SLMRecStudent(wide, teacher, DistillConfig(blocks=2))
    frozen = llmrec(4, seed=100)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        SLMRecStudent(llmrec(2), frozen, DistillConfig(blocks=2, mode="online"))


def test_from_teacher_builds_a_fresh_student_on_the_teachers_item_table():
    teacher = llmrec(2, backbone_layers=2, seed=100)
    model = SLMRecStudent.from_teacher(teacher, "tiny", n_layers=1, cfg=DistillConfig(blocks=1, w_ms=0))
    assert model.student.n_layers == 1 and model.pairs == [(1, 2)]
    assert torch.equal(model.student.item_embeddings.weight, teacher.item_embeddings.weight)
    assert dataclasses.replace(teacher.cfg, n_layers=1) == model.student.cfg
    loss, parts = model(batch())
    assert set(parts) == {"ce", "d_cos", "d_norm"} and torch.isfinite(loss)


# ------------------------------------------------------------------------------ teacher-state cache
def _examples(n=20, seed=5):
    g = torch.Generator().manual_seed(seed)
    inp = torch.randint(0, N_ITEMS + 1, (n, MAX_LEN), generator=g)
    inp[:, -1] = torch.randint(1, N_ITEMS + 1, (n,), generator=g)
    tgt = torch.zeros(n, MAX_LEN, dtype=torch.long)
    tgt[:, -1] = torch.randint(1, N_ITEMS + 1, (n,), generator=g)
    return {"input": inp, "target": tgt}


def test_teacher_cache_is_an_execution_setting_refused_online():
    from slmrec_lib.util import execution_fields

    assert {"teacher_cache", "teacher_cache_batch_size"} <= execution_fields(DistillConfig)
    assert make(DistillConfig(blocks=2)).uses_teacher_cache  # on by default offline
    assert not make(DistillConfig(blocks=2, teacher_cache=False)).uses_teacher_cache
    with pytest.raises(ValueError, match="online"):
        DistillConfig(mode="online", teacher_cache=True)
    online = make(DistillConfig(blocks=2, mode="online"))  # None: off online
    assert not online.uses_teacher_cache
    online.prepare_training(_examples(), "cpu")
    assert online._teacher_cache is None


def test_teacher_cache_is_built_only_when_the_run_feeds_more_than_one_pass():
    examples = _examples()
    model = make(DistillConfig(blocks=2), seed=3)
    model.prepare_training(examples, "cpu", planned_rows=len(examples["input"]))  # e.g. 80 steps of 16 rows
    assert model._teacher_cache is None  # the live teacher then costs less than a pass over every row
    model.prepare_training(examples, "cpu", planned_rows=3 * len(examples["input"]))
    assert model._teacher_cache is not None


def test_cached_teacher_gives_the_live_teachers_losses_and_weights():
    examples = _examples()
    runs = {}
    for cached in (False, True):
        model = make(DistillConfig(blocks=2, teacher_cache=cached, w_norm=0.1), seed=3)
        model.train()
        model.prepare_training(examples, "cpu")
        assert (model._teacher_cache is not None) == cached
        if cached:  # the live teacher must not run any more
            model.teacher.last_token_states = lambda *a, **k: pytest.fail("teacher ran despite the cache")
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        losses = []
        for step in range(4):
            row = torch.arange(step * 5, step * 5 + 5).flip(0)  # any order of rows
            b = {k: v[row] for k, v in examples.items()} | {"row": row}
            loss, parts = model(b)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(parts)
        runs[cached] = (losses, {n: p.detach().clone() for n, p in model.student.named_parameters()})
    for live, cache in zip(runs[False][0], runs[True][0]):
        assert live.keys() == cache.keys() == {"ce", "d_cos", "d_norm", "ms"}
        for k in live:
            assert abs(live[k] - cache[k]) <= 1e-5 * max(1.0, abs(live[k])), (k, live[k], cache[k])
    for n, w in runs[False][1].items():
        torch.testing.assert_close(runs[True][1][n], w, rtol=1e-4, atol=1e-6, msg=n)
    start = dict(make(DistillConfig(blocks=2), seed=3).student.named_parameters())
    assert not torch.equal(runs[True][1]["score.weight"], start["score.weight"])  # the weights did move


def test_teacher_cache_errors_name_the_missing_or_wrong_rows():
    examples = _examples()
    model = make(DistillConfig(blocks=2)).train()
    model.prepare_training(examples, "cpu")
    b = {k: v[:4] for k, v in examples.items()}
    with pytest.raises(KeyError, match="batch\\['row'\\]"):
        model(b)
    with pytest.raises(RuntimeError, match="does not point"):
        model(b | {"row": torch.arange(1, 5)})
    loss, _ = model(b | {"row": torch.arange(4)})
    assert torch.isfinite(loss)
