"""SASRec, GRU4Rec, BERT4Rec and Popularity: shapes, padding, causality, a one-epoch smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slmrec_lib.data import leave_one_out, pad_left, synthetic, train_examples
from slmrec_lib.evaluation import EvalProtocol, evaluate
from slmrec_lib.models.bert4rec import BERT4Rec, BERT4RecConfig
from slmrec_lib.models.gru4rec import GRU4Rec, GRU4RecConfig
from slmrec_lib.models.popularity import Popularity
from slmrec_lib.models.sasrec import SASRec, SASRecConfig, length_groups
from slmrec_lib.training import TrainConfig, fit

N_ITEMS, MAX_LEN = 30, 12


def build(name: str, n_items: int = N_ITEMS, max_len: int = MAX_LEN, **kw):
    torch.manual_seed(0)
    if name == "sasrec":
        return SASRec(n_items, SASRecConfig(max_len=max_len, hidden=16, heads=2, inner=32, **kw))
    if name == "sasrec_bce":
        return SASRec(n_items, SASRecConfig(max_len=max_len, hidden=16, heads=2, inner=32, loss="bce", **kw))
    if name == "gru4rec":
        return GRU4Rec(n_items, GRU4RecConfig(max_len=max_len, embed=16, hidden=24, **kw))
    if name == "bert4rec":
        return BERT4Rec(n_items, BERT4RecConfig(max_len=max_len, hidden=16, heads=2, inner=32, **kw))
    raise KeyError(name)


MODELS = ["sasrec", "sasrec_bce", "gru4rec", "bert4rec"]


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


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
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


def test_item_table():
    model = build("sasrec")
    table = model.item_table()
    assert table.shape == (N_ITEMS + 1, 16) and not table.requires_grad
    assert torch.all(table[0] == 0)  # padding row
    frozen = torch.nn.Embedding.from_pretrained(table, freeze=True)
    torch.testing.assert_close(frozen(torch.tensor([5])), model.item_emb(torch.tensor([5])))


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


@pytest.mark.parametrize("name", MODELS)
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
    with pytest.raises(ValueError, match="divisible"):
        SASRec(10, SASRecConfig(hidden=10, heads=3))


def test_chunked_softmax_ce_matches_plain():
    from slmrec_lib.models.sasrec import softmax_ce

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
