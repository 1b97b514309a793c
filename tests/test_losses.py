"""Hand-computed values for the SLMRec loss terms and the block-matching rule."""

import math

import pytest
import torch

from slmrec_lib.losses import block_ends, block_pairs, cross_entropy, d_cos, d_norm, multi_supervision


def test_d_cos_hand_computed():
    # row 0: orthogonal (cos 0); row 1: parallel, different length (cos 1); row 2: opposite (cos -1)
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    t = torch.tensor([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]])
    # mean cosine = (0 + 1 - 1) / 3 = 0 -> D_cos = 1
    assert d_cos(s, t).item() == pytest.approx(1.0)
    # first two rows only: mean cosine 0.5 -> D_cos 0.5
    assert d_cos(s[:2], t[:2]).item() == pytest.approx(0.5)
    # identical states: 0
    assert d_cos(s, s).item() == pytest.approx(0.0, abs=1e-6)


def test_d_norm_hand_computed():
    s = torch.tensor([[3.0, 4.0], [1.0, 1.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    # distances 5, 0, 2 -> mean 7/3 (authors' code); squared 25, 0, 4 -> mean 29/3 (paper)
    assert d_norm(s, t).item() == pytest.approx(7.0 / 3.0)
    assert d_norm(s, t, squared=False).item() == pytest.approx(7.0 / 3.0)
    assert d_norm(s, t, squared=True).item() == pytest.approx(29.0 / 3.0)


def test_distances_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="hidden size"):
        d_cos(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="hidden size"):
        d_norm(torch.ones(2, 3), torch.ones(3, 3))


def test_cross_entropy_ignores_padding_targets():
    logits = torch.tensor([[0.0, 0.0, math.log(2.0), 0.0], [5.0, -1.0, 3.0, 0.0]])
    # row 0: softmax of (1, 1, 2, 1) -> p(item 2) = 2/5; row 1 has target 0 and carries no loss
    got = cross_entropy(logits, torch.tensor([2, 0]))
    assert got.item() == pytest.approx(math.log(5.0 / 2.0))
    with pytest.raises(ValueError, match="all 0"):
        cross_entropy(logits, torch.tensor([0, 0]))


def test_multi_supervision_is_a_sum_of_head_cross_entropies():
    target = torch.tensor([2])
    head1 = torch.zeros(1, 4)  # uniform over 4 columns -> CE ln 4
    head2 = torch.tensor([[0.0, 0.0, math.log(2.0), 0.0]])  # p = 2/5 -> CE ln 2.5
    got = multi_supervision([head1, head2], target)
    assert got.item() == pytest.approx(math.log(10.0))  # ln 4 + ln 2.5
    assert multi_supervision([head1], target).item() == pytest.approx(math.log(4.0))
    with pytest.raises(ValueError, match="weight to 0"):
        multi_supervision([], target)


def test_multi_supervision_gradient_reaches_every_head():
    heads = [torch.zeros(2, 5, requires_grad=True) for _ in range(3)]
    multi_supervision(heads, torch.tensor([1, 4])).backward()
    for h in heads:
        assert h.grad is not None and h.grad.abs().sum() > 0


# block_pairs: expected values computed by hand from round_half_up(i * D / b)
@pytest.mark.parametrize(
    "student, teacher, blocks, expected",
    [
        # 8 -> 4 (the paper's SLMRec_{4<-8}); b divides both depths, same as the authors' code
        (4, 8, 1, [(4, 8)]),
        (4, 8, 2, [(2, 4), (4, 8)]),
        (4, 8, 4, [(1, 2), (2, 4), (3, 6), (4, 8)]),
        # 30 -> 8: 30/4 = 7.5 -> 8, 22.5 -> 23; 30/8 = 3.75 -> 4, 11.25 -> 11, 18.75 -> 19, 26.25 -> 26
        (8, 30, 1, [(8, 30)]),
        (8, 30, 2, [(4, 15), (8, 30)]),
        (8, 30, 4, [(2, 8), (4, 15), (6, 23), (8, 30)]),
        (8, 30, 8, [(1, 4), (2, 8), (3, 11), (4, 15), (5, 19), (6, 23), (7, 26), (8, 30)]),
        # 30 -> 4
        (4, 30, 1, [(4, 30)]),
        (4, 30, 2, [(2, 15), (4, 30)]),
        (4, 30, 4, [(1, 8), (2, 15), (3, 23), (4, 30)]),
    ],
)
def test_block_pairs(student, teacher, blocks, expected):
    pairs = block_pairs(student, teacher, blocks)
    assert pairs == expected
    assert pairs[-1] == (student, teacher)  # the last pair is the final outputs
    for (s0, t0), (s1, t1) in zip(pairs, pairs[1:]):
        assert s1 > s0 and t1 > t0  # strictly increasing


@pytest.mark.parametrize("student, teacher", [(4, 8), (4, 30)])
def test_block_pairs_more_blocks_than_student_layers_is_an_error(student, teacher):
    with pytest.raises(ValueError, match="cannot be cut"):
        block_pairs(student, teacher, 8)
    with pytest.raises(ValueError, match="blocks must be"):
        block_pairs(student, teacher, 0)


def test_block_pairs_match_authors_rule_where_blocks_divide_the_depth():
    # authors' code: ((N // b) * i, (M // b) * i)
    for n, m, b in [(4, 8, 4), (8, 32, 4), (4, 32, 2), (8, 32, 8)]:
        authors = [((n // b) * i, (m // b) * i) for i in range(1, b + 1)]
        assert block_pairs(n, m, b) == authors


def test_block_ends_departs_from_authors_rule_on_30_layers():
    # authors' (30 // 4) * i never reaches layer 30; ours ends there and is never below theirs
    authors = [(30 // 4) * i for i in range(1, 5)]
    assert authors == [7, 14, 21, 28]
    ours = block_ends(30, 4)
    assert ours == [8, 15, 23, 30]
    assert all(o >= a for o, a in zip(ours, authors))


@pytest.mark.parametrize("depth", range(1, 41))
def test_block_ends_properties_for_every_valid_b(depth):
    for b in range(1, depth + 1):
        ends = block_ends(depth, b)
        assert len(ends) == b and ends[-1] == depth and ends[0] >= 1
        sizes = [e1 - e0 for e0, e1 in zip([0] + ends, ends)]
        assert min(sizes) >= depth // b and max(sizes) <= -(-depth // b)  # floor or ceil of D / b
