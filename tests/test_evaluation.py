import numpy as np
import pytest
import torch

from slmrec_lib.data import SequenceData, leave_one_out, synthetic
from slmrec_lib.evaluation import FULL, SAMPLED_999, EvalProtocol, evaluate, metrics_from_ranks, sample_negatives


def test_metrics_closed_form():
    # four users, positive at 0-based ranks 0, 1, 4, 12
    m = metrics_from_ranks(np.array([0, 1, 4, 12]), ks=(1, 5, 10))
    assert m["HR@1"] == pytest.approx(0.25)
    assert m["HR@5"] == pytest.approx(0.75)
    assert m["HR@10"] == pytest.approx(0.75)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(6)) / 4)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13) / 4)


def test_negatives_avoid_history_and_are_seeded():
    ds = synthetic(n_users=50, n_items=60, seed=0)
    a = sample_negatives(ds.sequences, ds.n_items, 30, seed=3)
    b = sample_negatives(ds.sequences, ds.n_items, 30, seed=3)
    c = sample_negatives(ds.sequences, ds.n_items, 30, seed=4)
    assert (a == b).all() and (a != c).any()
    for seq, neg in zip(ds.sequences, a):
        assert not set(neg.tolist()) & set(seq.tolist())
        assert len(set(neg.tolist())) == 30 and neg.min() >= 1 and neg.max() <= 60
    with pytest.raises(ValueError, match="fewer than"):
        sample_negatives(ds.sequences, ds.n_items, 59, seed=0)


class Fixed(torch.nn.Module):
    """Scores item i with a fixed vector: a hand-built 4 users x 5 items example."""

    max_len = 3

    def __init__(self, scores):
        super().__init__()
        self.register_buffer("scores", torch.tensor(scores, dtype=torch.float))

    def score_all(self, inp):
        return self.scores[: len(inp)]

    def score_candidates(self, inp, cand):
        return self.score_all(inp).gather(1, cand)


def test_full_ranking_masks_history_and_counts_ties_against_positive():
    seqs = [np.array([1, 2, 3]), np.array([2, 3, 4]), np.array([4, 5, 1]), np.array([5, 1, 2])]
    split = leave_one_out(SequenceData("t", seqs, 5))
    #            pad  1    2    3    4    5
    scores = [[0.0, 9.0, 9.0, 1.0, 2.0, 3.0],  # test target 3, history {1,2} masked: 4,5 above -> rank 2
              [0.0, 5.0, 9.0, 9.0, 6.0, 1.0],  # target 4, history {2,3}: 1 below -> rank 0
              [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],  # target 1, history {4,5}: 2,3 score 0 < 1 -> rank 0
              [0.0, 0.0, 7.0, 7.0, 7.0, 0.0]]  # target 2, history {5,1}: 3,4 tie with it -> rank 2
    model = Fixed(scores)
    m = evaluate(model, split, FULL, stage="test", batch_size=4)  # Fixed scores rows by batch position
    ranks = np.array([2, 0, 0, 2])
    assert m == pytest.approx(metrics_from_ranks(ranks, FULL.ks))


def test_sampled_protocol_name_and_constant_model_ranks_last():
    ds = synthetic(n_users=20, n_items=50, seed=0)
    split = leave_one_out(ds)
    proto = EvalProtocol("sampled", 20, seed=7)
    assert proto.name == "sampled-20-seed7"
    model = Fixed(np.zeros((20, 51)).tolist())
    assert evaluate(model, split, proto)["MRR"] == pytest.approx(1 / 21)
    with pytest.raises(ValueError, match="unknown evaluation protocol"):
        EvalProtocol("sampeld")


# ------------------------------------------------------------------------------- non-finite scores, ties
from slmrec_lib.evaluation import EvaluationError, rank_positives  # noqa: E402


class Broken(torch.nn.Module):
    """Random scores, with one value replaced for one user index (its row in the single batch)."""

    max_len = 5

    def __init__(self, n_items, user, value, column=None):
        super().__init__()
        self.n_items, self.user, self.value, self.column = n_items, user, value, column
        self.register_buffer("dummy", torch.zeros(1))

    def score_all(self, inp):
        scores = torch.randn(len(inp), self.n_items + 1, generator=torch.Generator().manual_seed(0))
        scores[self.user, self.column if self.column is not None else slice(None)] = self.value
        return scores

    def score_candidates(self, inp, cand):
        return self.score_all(inp).gather(1, cand)


@pytest.mark.parametrize("protocol", [EvalProtocol("sampled", 10, 0), FULL], ids=lambda p: p.name)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_scores_are_an_error_naming_stage_protocol_and_user(protocol, value):
    split = leave_one_out(synthetic(n_users=12, n_items=40, seed=0))
    model = Broken(40, user=7, value=value)
    with pytest.raises(EvaluationError, match=rf"valid stage under protocol {protocol.name}, first for user index 7"):
        evaluate(model, split, protocol, stage="valid", batch_size=64)
    with pytest.raises(EvaluationError, match="user index 2 "):  # row 7 of the batch is user index 2 of the split
        evaluate(model, split, protocol, stage="test", batch_size=64, users=np.array([0, 9, 3, 4, 5, 6, 1, 2, 8]))


def test_minus_inf_is_never_recommended_and_ranks_last():
    seqs = [np.array([1, 2, 3]), np.array([2, 3, 4])]
    split = leave_one_out(SequenceData("t", seqs, 5))
    inf = float("-inf")
    # user 0: target 3, history {1, 2}; only item 5 has a score, the positive is -inf (e.g. outside P5's beams)
    # user 1: target 4, history {2, 3}; item 1 has -inf, the positive 0.5
    model = Fixed([[inf, inf, inf, inf, inf, 2.0], [inf, inf, 1.0, 1.0, 0.5, 0.1]])
    ranks, ties = rank_positives(model, split, FULL, "test", batch_size=2, return_ties=True)
    # user 0 competes with items 4 and 5 (not padding, not its history): both >= -inf
    assert ranks.tolist() == [2, 0] and ties.tolist() == [1, 0]


def test_ties_are_counted_and_rank_pessimistically():
    seqs = [np.array([1, 2, 3]), np.array([2, 3, 4]), np.array([4, 5, 1]), np.array([5, 1, 2])]
    split = leave_one_out(SequenceData("t", seqs, 5))
    #            pad  1    2    3    4    5
    scores = [[0.0, 9.0, 9.0, 1.0, 1.0, 1.0],  # target 3, history {1,2}: 4 and 5 tie with it -> rank 2, 2 ties
              [0.0, 5.0, 9.0, 9.0, 6.0, 1.0],  # target 4: nothing eligible above -> rank 0, 0 ties
              [0.0, 1.0, 1.0, 0.0, 1.0, 1.0],  # target 1, history {4,5}: 2 ties, 3 below -> rank 1, 1 tie
              [0.0, 0.0, 7.0, 7.0, 8.0, 0.0]]  # target 2, history {5,1}: 4 above, 3 ties -> rank 2, 1 tie
    ranks, ties = rank_positives(Fixed(scores), split, FULL, "test", batch_size=4, return_ties=True)
    assert ranks.tolist() == [2, 0, 1, 2] and ties.tolist() == [2, 0, 1, 1]
    assert rank_positives(Fixed(scores), split, FULL, "test", batch_size=4).tolist() == [2, 0, 1, 2]


def test_sampled_ties_in_bf16_scores_are_counted_in_fp32():
    split = leave_one_out(synthetic(n_users=20, n_items=60, seed=0))
    proto = EvalProtocol("sampled", 30, seed=1)
    base = torch.linspace(0.0, 1.0, 61)

    class Coarse(Fixed):
        def score_all(self, inp):
            return (base + 1000.0).expand(len(inp), -1).to(torch.bfloat16)  # bf16 steps of 4 near 1000: all tie

    class Exact(Coarse):
        def score_all(self, inp):
            return (base + 1000.0).expand(len(inp), -1)  # float32 keeps them apart

    coarse = Coarse(np.zeros((1, 61)).tolist())
    ranks, ties = rank_positives(coarse, split, proto, "test", return_ties=True)
    assert ranks.tolist() == [30] * 20 and ties.tolist() == [30] * 20  # all tie: pessimistic rank, every tie counted
    ranks, ties = rank_positives(Exact(np.zeros((1, 61)).tolist()), split, proto, "test", return_ties=True)
    assert ties.tolist() == [0] * 20
    _, targets = split.stage("test")
    negs = split.negatives(30, 1)
    assert ranks.tolist() == [int((n > t).sum()) for n, t in zip(negs, targets)]  # higher id scores higher


# ------------------------------------------------------------------------------- shuffled histories
def test_shuffled_protocol_names_and_parses():
    assert EvalProtocol("sampled", 999, 0, shuffle=True).name == "sampled-999-seed0-shuffled"
    assert EvalProtocol("full", shuffle=True).name == "full-shuffled"
    assert EvalProtocol("full", seed=3, shuffle=True).name == "full-shuffled-seed3"
    for name in ("sampled-999-seed0", "full", "sampled-50-seed2-shuffled", "full-shuffled", "full-shuffled-seed3"):
        assert EvalProtocol.from_name(name).name == name
    assert EvalProtocol.from_name("sampled-999-seed0") == SAMPLED_999
    for bad in ("full-seed3", "sampled-999", "sampeld-999-seed0", "full-shufled"):
        with pytest.raises(ValueError, match="unknown protocol name"):
            EvalProtocol.from_name(bad)


class Recorder(torch.nn.Module):
    """Scores by the most recent input item (order-sensitive) and records what it was given."""

    max_len = 6

    def __init__(self, n_items):
        super().__init__()
        self.n_items, self.seen, self.cands = n_items, [], []
        self.table = torch.nn.Parameter(torch.randn(n_items + 1, n_items + 1, generator=torch.Generator().manual_seed(1)))

    def score_all(self, inp):
        return self.table[inp[:, -1]]

    def score_candidates(self, inp, cand):
        self.seen.append(inp.clone())
        self.cands.append(cand.clone())
        return self.score_all(inp).gather(1, cand)


def test_shuffled_protocol_keeps_users_targets_candidates_and_item_multisets():
    split = leave_one_out(synthetic(n_users=40, n_items=60, seed=0))
    plain_p, shuf_p = EvalProtocol("sampled", 20, 5), EvalProtocol("sampled", 20, 5, shuffle=True)
    plain, shuf, again = Recorder(60), Recorder(60), Recorder(60)
    r_plain = rank_positives(plain, split, plain_p, "test", batch_size=16)
    r_shuf = rank_positives(shuf, split, shuf_p, "test", batch_size=16)
    rank_positives(again, split, shuf_p, "test", batch_size=16)
    a, b, c = (torch.cat(m.seen) for m in (plain, shuf, again))
    assert torch.equal(torch.cat(plain.cands), torch.cat(shuf.cands))  # same positives and negatives
    assert torch.equal(b, c) and not torch.equal(a, b)  # seeded: the same for every model and call
    assert all(sorted(x.tolist()) == sorted(y.tolist()) for x, y in zip(a, b))
    assert (r_plain != r_shuf).any()  # an order-sensitive model sees a different history


def test_full_ranking_leaves_the_models_scores_untouched():
    seqs = [np.array([1, 2, 3]), np.array([2, 3, 4])]
    split = leave_one_out(SequenceData("t", seqs, 5))
    model = Fixed([[0.0, 9.0, 9.0, 1.0, 2.0, 3.0], [0.0, 5.0, 9.0, 9.0, 6.0, 1.0]])
    before = model.scores.clone()
    first = rank_positives(model, split, FULL, "test", batch_size=2)
    assert torch.equal(model.scores, before)  # score_all returns a view of the buffer: it must not be masked
    assert (rank_positives(model, split, FULL, "test", batch_size=2) == first).all()
