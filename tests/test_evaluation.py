import numpy as np
import pytest
import torch

from slmrec_lib.data import SequenceData, leave_one_out, synthetic
from slmrec_lib.evaluation import FULL, EvalProtocol, evaluate, metrics_from_ranks, sample_negatives


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
