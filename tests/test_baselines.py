"""SASRec (every loss / negatives / block setting), GRU4Rec, BERT4Rec, Popularity and their shared layers:
shapes, padding, causality, negative sampling, the BCE loss, a one-epoch smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slmrec_lib.data import leave_one_out, pad_left, synthetic, train_examples
from slmrec_lib.evaluation import EvalProtocol, evaluate
from slmrec_lib.models.bert4rec import BERT4Rec, BERT4RecConfig
from slmrec_lib.models.gru4rec import GRU4Rec, GRU4RecConfig
from slmrec_lib.models.popularity import Popularity
from slmrec_lib.models.layers import (BLOCKS, Block, SelfAttention, attention_mask, bce_sampled, init_weights,
                                     length_groups, sample_negatives, softmax_ce)
from slmrec_lib.models.sasrec import SASRec, SASRecConfig
from slmrec_lib.training import TrainConfig, fit

N_ITEMS, MAX_LEN = 30, 12


def build(name: str, n_items: int = N_ITEMS, max_len: int = MAX_LEN, **kw):
    torch.manual_seed(0)
    if name == "sasrec":
        return SASRec(n_items, SASRecConfig(max_len=max_len, hidden=16, heads=2, inner=32, **kw))
    if name.startswith("sasrec:"):  # sasrec:<loss>:<negatives>:<block>
        loss, negatives, block = name.split(":")[1:]
        return SASRec(n_items, SASRecConfig(max_len=max_len, hidden=16, heads=2, inner=32, loss=loss,
                                            negatives=negatives, block=block, **kw))
    if name == "gru4rec":
        return GRU4Rec(n_items, GRU4RecConfig(max_len=max_len, embed=16, hidden=24, **kw))
    if name == "bert4rec":
        return BERT4Rec(n_items, BERT4RecConfig(max_len=max_len, hidden=16, heads=2, inner=32, **kw))
    raise KeyError(name)


SASREC_VARIANTS = [f"sasrec:{loss}:{neg}:{block}" for block in BLOCKS
                   for loss, neg in (("ce", "target"), ("bce", "target"), ("bce", "history"))]
MODELS = ["sasrec", "sasrec:bce:history:post_ln_relu", "gru4rec", "bert4rec"]


def _rows(max_len: int) -> torch.Tensor:
    seqs = [np.array([3, 7, 1, 9, 4]), np.array([5]), np.arange(1, 21) % N_ITEMS + 1, np.array([2, 2, 8])]
    return pad_left(seqs, max_len)


@pytest.mark.parametrize("name", MODELS)
def test_shapes(name):
    model = build(name).eval()
    x = _rows(MAX_LEN)
    assert model.score_all(x).shape == (4, N_ITEMS + 1)
    cand = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 30]])
    got = model.score_candidates(x, cand)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, model.score_all(x).gather(1, cand), atol=1e-5, rtol=1e-5)
    batch = {"input": x, "target": torch.cat([x[:, 1:], torch.tensor([[6], [6], [6], [6]])], 1) * (x > 0)}
    batch["target"][:, -1] = 6
    loss, parts = model.train()(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and parts


@pytest.mark.parametrize("name", MODELS)
def test_left_padding_does_not_change_scores(name):
    model = build(name).eval()
    short, long = _rows(8), _rows(MAX_LEN)
    # users 0, 1 and 3 fit in 8 columns: more left padding must not change their scores
    same = [0, 1, 3]
    torch.testing.assert_close(model.score_all(short)[same], model.score_all(long)[same], atol=1e-5, rtol=1e-5)
    # nor does the company a user keeps in the batch
    torch.testing.assert_close(model.score_all(long[:1]), model.score_all(long)[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "sasrec:ce:target:post_ln_gelu", "gru4rec"])
def test_causal_future_items_do_not_leak(name):
    model = build(name).eval()
    a = pad_left([np.array([3, 7, 1, 9, 4])], MAX_LEN)
    b = a.clone()
    b[0, -1] = 11  # change only the newest item
    ha, hb = model.encode(a), model.encode(b)
    torch.testing.assert_close(ha[:, :-1], hb[:, :-1])  # every earlier position is untouched
    assert not torch.allclose(ha[:, -1], hb[:, -1])


def test_length_groups_cover_each_row_once():
    x = _rows(MAX_LEN)
    groups = length_groups(x)
    rows = torch.cat([r for r, _ in groups]).sort().values
    assert rows.tolist() == [0, 1, 2, 3]
    lengths = (x > 0).sum(1)
    for r, w in groups:
        assert (lengths[r] <= w).all() and w <= MAX_LEN


def test_length_groups_off_keeps_one_full_width_group():
    x = _rows(MAX_LEN)
    ((rows, w),) = length_groups(x, by_length=False)
    assert rows.tolist() == [0, 1, 2, 3] and w == MAX_LEN
    assert len(length_groups(x)) > 1  # on the CPU the default groups by length


def test_sasrec_grouped_loss_equals_padded_loss():
    """The per-length-group forward gives the loss of one padded pass (eval mode: no dropout)."""
    model = build("sasrec").eval()
    split = leave_one_out(synthetic(n_users=40, n_items=N_ITEMS, seed=1))
    ex = train_examples(split, MAX_LEN)
    loss, _ = model(ex)
    h = model.encode(ex["input"])
    keep = ex["target"] > 0
    ref = torch.nn.functional.cross_entropy(h[keep] @ model.item_emb.weight[1:].T, ex["target"][keep] - 1)
    torch.testing.assert_close(loss, ref)


def test_item_embeddings():
    model = build("sasrec")
    table = model.item_embeddings()
    assert table.shape == (N_ITEMS + 1, 16) and not table.requires_grad
    assert torch.all(table[0] == 0)  # padding row
    frozen = torch.nn.Embedding.from_pretrained(table, freeze=True)
    torch.testing.assert_close(frozen(torch.tensor([5])), model.item_emb(torch.tensor([5])))
    with pytest.warns(DeprecationWarning, match="item_embeddings"):
        torch.testing.assert_close(model.item_table(), table)  # the old name until its callers move


def test_popularity_counts_training_items_only():
    split = leave_one_out(synthetic(n_users=50, n_items=N_ITEMS, seed=2))
    pop = Popularity.from_sequences(split.train, split.n_items)
    expected = np.bincount(np.concatenate(split.train), minlength=N_ITEMS + 1)
    scores = pop.score_all(_rows(MAX_LEN))
    assert scores.shape == (4, N_ITEMS + 1)
    np.testing.assert_array_equal(scores[0, 1:].numpy(), expected[1:])
    assert scores[0, 0] == float("-inf")
    full = evaluate(pop, split, EvalProtocol("full"), stage="test", max_len=MAX_LEN)
    assert 0.0 <= full["NDCG@10"] <= 1.0
    with pytest.raises(TypeError, match="nothing to train"):
        pop({"input": _rows(MAX_LEN), "target": _rows(MAX_LEN)})


def _mean_loss(model, ex) -> float:
    torch.manual_seed(5)  # BERT4Rec draws its masks: the same draws before and after training
    model.eval()
    with torch.no_grad():
        return float(model(ex)[0])


@pytest.mark.parametrize("name", MODELS + [v for v in SASREC_VARIANTS if v not in MODELS and v != "sasrec:ce:target:pre_ln"])
def test_one_epoch_lowers_loss(name, tmp_path):
    split = leave_one_out(synthetic(n_users=300, n_items=N_ITEMS, seed=0))
    ex = train_examples(split, MAX_LEN)
    model = build(name)
    before = _mean_loss(model, ex)
    res = fit(model, ex, split, TrainConfig(lr=1e-2, batch_size=32, epochs=1, progress=False),
              tmp_path, EvalProtocol("sampled", n_negatives=5, seed=0))
    after = _mean_loss(model, ex)
    assert res.steps == 10
    assert after < before - 0.02, (before, after)


def test_sasrec_learns_the_synthetic_chain(tmp_path):
    """A few epochs on Markov-chain data: SASRec clearly beats popularity on held-out users' next items."""
    split = leave_one_out(synthetic(n_users=300, n_items=N_ITEMS, seed=0))
    ex = train_examples(split, MAX_LEN)
    model = build("sasrec", dropout=0.1)
    proto = EvalProtocol("full")
    fit(model, ex, split, TrainConfig(lr=5e-3, batch_size=32, epochs=8, progress=False, select_metric="NDCG@10"),
        tmp_path, proto)
    sas = evaluate(model, split, proto, stage="test", max_len=MAX_LEN)["NDCG@10"]
    pop = evaluate(Popularity.from_sequences(split.train, split.n_items), split, proto, stage="test",
                   max_len=MAX_LEN)["NDCG@10"]
    assert sas > pop + 0.05, (sas, pop)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(loss="bpr")
    with pytest.raises(ValueError, match="negatives"):
        SASRecConfig(loss="bce", negatives="popular")
    with pytest.raises(ValueError, match="only applies to loss='bce'"):
        SASRecConfig(loss="ce", negatives="history")
    with pytest.raises(ValueError, match="block"):
        SASRecConfig(block="post_ln")
    with pytest.raises(ValueError, match="divisible"):
        SASRec(10, SASRecConfig(hidden=10, heads=3))


def test_chunked_softmax_ce_matches_plain():
    torch.manual_seed(0)
    h = torch.randn(37, 8, requires_grad=True)
    W = torch.randn(50, 8, requires_grad=True)
    t = torch.randint(0, 50, (37,))
    ref = torch.nn.functional.cross_entropy(h @ W.T, t)
    g_ref = torch.autograd.grad(2 * ref, (h, W))
    got = softmax_ce(h, W, t, chunk=10)  # 4 chunks, the last one short
    g_got = torch.autograd.grad(2 * got, (h, W))
    torch.testing.assert_close(got, ref)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b)


def test_default_sasrec_is_the_pre_ln_model_of_before():
    """The default settings keep the parameter names of today's model, so saved weights still load."""
    model = build("sasrec")
    assert model.cfg.block == "pre_ln" and model.cfg.loss == "ce" and model.cfg.negatives == "target"
    keys = set(model.state_dict())
    assert "ln_f.weight" in keys and not any(k.startswith("emb_ln") for k in keys)
    post = set(build("sasrec:ce:target:post_ln_relu").state_dict())
    assert "emb_ln.weight" in post and "ln_f.weight" not in post


def test_history_negatives_never_hit_the_rows_history():
    """A hand-built batch: row 0 has seen items 1-7, row 1 items 3, 8-10; only items 8-10 (row 0) and
    1, 2, 4-7 (row 1) are allowed. Many draws: none in its row's history, and every allowed item drawn."""
    n_items = 10
    inp = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 3, 8, 9]])
    tgt_rows = torch.tensor([[0, 2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 8, 9, 10]])
    history = torch.cat([inp, tgt_rows], 1)
    keep = tgt_rows > 0
    target = tgt_rows[keep].repeat(500)  # (N,)
    row = torch.arange(2)[:, None].expand_as(tgt_rows)[keep].repeat(500)
    torch.manual_seed(0)
    neg = sample_negatives(target, n_items, history, row)
    seen = [set(history[r].tolist()) for r in range(2)]
    for r in range(2):
        drawn = set(neg[row == r].tolist())
        assert not drawn & seen[r], (r, drawn & seen[r])
        assert drawn == set(range(1, n_items + 1)) - seen[r]
    # without a history only the target is excluded: row 0 then draws its own history items too
    plain = sample_negatives(target, n_items)
    assert (plain != target).all() and set(plain[row == 0].tolist()) & seen[0]


def test_history_negatives_reject_a_row_that_holds_every_item():
    history = torch.tensor([[1, 2, 3], [1, 0, 0]])
    with pytest.raises(ValueError, match="row 0 .* all 3 items"):
        sample_negatives(torch.tensor([2, 1]), 3, history, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="row"):
        sample_negatives(torch.tensor([2, 1]), 3, history)


def test_negatives_follow_the_training_seed():
    target, history, row = torch.tensor([1, 2, 3, 4]), torch.tensor([[1, 2, 3, 4]]), torch.zeros(4, dtype=torch.long)
    torch.manual_seed(7)
    a = sample_negatives(target, 500, history, row)
    torch.manual_seed(7)
    b = sample_negatives(target, 500, history, row)
    torch.manual_seed(8)
    c = sample_negatives(target, 500, history, row)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bce_sampled_on_a_hand_computed_two_item_case():
    """h . pos = 2 and h . neg = -1 for the first position, 0 and 3 for the second:
    loss = mean(log(1 + e^-2), log 2) + mean(log(1 + e^-1), log(1 + e^3))."""
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[2.0, 5.0], [4.0, 0.0]])
    neg = torch.tensor([[-1.0, 9.0], [7.0, 3.0]])
    expected = (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2 + (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(3.0))) / 2
    assert float(bce_sampled(h, pos, neg)) == pytest.approx(expected, rel=1e-6)


def test_sasrec_bce_loss_uses_the_sampled_negative():
    """SASRec's bce forward equals bce_sampled on its own hidden states and the negatives drawn with the same seed."""
    model = build("sasrec:bce:history:pre_ln").eval()
    inp = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 4, 6, 8]])
    tgt = torch.tensor([[0, 0, 5, 7, 9], [2, 4, 6, 8, 10]])
    model.max_len = 5
    torch.manual_seed(3)
    loss, parts = model({"input": inp, "target": tgt})
    keep = tgt > 0
    h = model.encode(inp)[keep]
    row = torch.arange(2)[:, None].expand_as(tgt)[keep]
    torch.manual_seed(3)  # rows 0 and 1 fall in length groups of width 4 and 5: forward keeps row order
    neg = sample_negatives(tgt[keep], N_ITEMS, torch.cat([inp, tgt], 1), row)
    ref = bce_sampled(h, model.item_emb(tgt[keep]), model.item_emb(neg))
    torch.testing.assert_close(loss, ref)
    assert set(parts) == {"bce"}


@pytest.mark.parametrize("layout", BLOCKS)
def test_layers_shapes(layout):
    torch.manual_seed(0)
    x = torch.randn(3, 6, 16)
    ids = torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 2]])
    causal, full = attention_mask(ids, causal=True), attention_mask(ids, causal=False)
    assert causal.shape == full.shape == (3, 1, 6, 6) and causal.dtype == torch.bool
    assert not causal[1, 0, 2, 3] and full[1, 0, 2, 3]  # the future is hidden only when causal
    assert not full[0, 0, 3, 0] and full[0, 0, 0, 0]  # padded keys hidden; a padded query sees itself
    attn = SelfAttention(16, 4, 0.0)
    assert attn(x, causal).shape == (3, 6, 16)
    block = Block(16, 4, 24, 0.0, layout).eval()
    init_weights(block, 0.02)
    y = block(x, causal)
    assert y.shape == (3, 6, 16) and torch.isfinite(y).all()
    if layout != "pre_ln":  # post-LN blocks end with a LayerNorm: unit-variance rows
        torch.testing.assert_close(y.std(-1, unbiased=False), torch.ones(3, 6), atol=1e-3, rtol=1e-3)
    assert isinstance(block.mlp[1], torch.nn.ReLU if layout == "post_ln_relu" else torch.nn.GELU)
    with pytest.raises(ValueError, match="layout"):
        Block(16, 4, 24, 0.0, "sandwich")


def test_init_weights_zeroes_the_padding_row():
    emb = torch.nn.Embedding(5, 4, padding_idx=0)
    init_weights(emb, 0.5)
    assert torch.all(emb.weight[0] == 0) and emb.weight[1:].std() > 0.1


def test_bench_output_is_named_by_the_dataset_files_stem():
    import importlib.util

    from slmrec_lib.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_sasrec", REPO_ROOT / "benchmarks" / "bench_sasrec.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.output_name("sasrec", "some/dir/Beauty.txt", "bce") == "sasrec_Beauty_bce.json"
    assert bench.output_name("sasrec", "beauty") == "sasrec_beauty.json"
    assert bench.PATIENCE == {"sasrec": 5, "gru4rec": 10, "bert4rec": 8}


def test_sasrec_history_negatives_map_targets_to_their_own_row(monkeypatch):
    """Length groups reorder rows (the long row 0 runs after the short row 1): every target must still be
    matched to its own row's history, and no drawn negative may lie in it."""
    from slmrec_lib.models import sasrec as sasrec_module

    seen = {}

    def recording(target, n_items, history=None, row=None):
        neg = sample_negatives(target, n_items, history, row)
        seen.update(target=target, history=history, row=row, neg=neg)
        return neg

    monkeypatch.setattr(sasrec_module, "sample_negatives", recording)
    model = build("sasrec:bce:history:pre_ln")
    inp = pad_left([np.arange(1, 10), np.array([20])], MAX_LEN)  # row 0: 9 items, row 1: one item
    tgt = torch.zeros_like(inp)
    tgt[0, -9:] = torch.arange(2, 11)
    tgt[1, -1] = 21
    assert [r.tolist() for r, _ in length_groups(inp)] == [[1], [0]]
    for seed in range(20):
        torch.manual_seed(seed)
        model({"input": inp, "target": tgt})
        t, h, r, n = seen["target"], seen["history"], seen["row"], seen["neg"]
        assert (h[r] == t[:, None]).any(1).all()  # each target sits in the history of the row it is charged to
        assert not (h[r] == n[:, None]).any(1).any()
