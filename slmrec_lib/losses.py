"""Loss functions of SLMRec distillation, as plain functions of tensors.

Paper: Xu et al., "SLMRec: Distilling Large Language Models into Small for Sequential Recommendation",
ICLR 2025 (arXiv 2405.17890), Section 3. The student's total loss is

    L = CE + l1 * sum_i D_cos(s_i, t_i) + l2 * sum_i D_norm(s_i, t_i) + l3 * L_ms

where s_i and t_i are the student's and the teacher's last-token hidden states at the end of block i
(i = 1..b), matched by `block_pairs`, and L_ms is the cross-entropy of b - 1 extra prediction heads
on the student's intermediate block ends.

NOTE: D_norm is the squared L2 distance in the paper and the unsquared distance in the authors' code
(with weight 0.1); both are here (`squared=`), the unsquared one is the library's default.
NOTE: the authors' code places block ends at (N // b) * i, which for a depth that b does not divide
never reaches the final output; `block_pairs` rounds to the nearest layer instead (see its docstring).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all items; positions whose target is 0 (padding) carry no loss.

    logits: [B, n_items + 1] (column 0 is padding); target: LongTensor [B] of item ids.
    A batch with no target at all is an error (the mean would be NaN).
    """
    if logits.dim() != 2 or target.dim() != 1 or logits.shape[0] != target.shape[0]:
        raise ValueError(f"cross_entropy wants logits [B, C] and target [B]; got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    if not bool((target != 0).any()):
        raise ValueError("cross_entropy got a batch whose targets are all 0 (padding): no loss to compute")
    return F.cross_entropy(logits, target, ignore_index=0)


def _check_pair(name: str, s: torch.Tensor, t: torch.Tensor) -> None:
    if s.shape != t.shape:
        raise ValueError(f"{name}: student states {tuple(s.shape)} and teacher states {tuple(t.shape)} "
                         "differ in shape; student and teacher must share the hidden size")
    if s.dim() < 1 or s.numel() == 0:
        raise ValueError(f"{name}: empty states {tuple(s.shape)}")


def d_cos(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """1 - mean cosine similarity of matched rows.

    s, t: [..., H] (usually [B, H], the last-token states of one block end). Cosine is taken over the
    last dimension and averaged over all leading ones. Range [0, 2]; 0 when every pair is parallel.
    """
    _check_pair("d_cos", s, t)
    return 1.0 - F.cosine_similarity(s, t, dim=-1).mean()


def d_norm(s: torch.Tensor, t: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Mean L2 distance of matched rows: mean ||s - t||_2 (authors' code) or mean ||s - t||_2^2 (paper).

    s, t: [..., H]; the norm is over the last dimension, the mean over all leading ones.
    """
    _check_pair("d_norm", s, t)
    diff = s - t  # [..., H]
    if squared:
        return diff.pow(2).sum(dim=-1).mean()
    return torch.linalg.vector_norm(diff, ord=2, dim=-1).mean()


def multi_supervision(head_logits: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """L_ms: the sum of the cross-entropies of the extra prediction heads.

    head_logits: a non-empty list of [B, n_items + 1] logits, one a head (b - 1 heads for b blocks);
    target: LongTensor [B]. Each head's cross-entropy is a mean over the batch; the heads are summed
    (not averaged), as in the authors' code. An empty list is an error: with b = 1 there are no heads,
    and the caller must switch the term off (weight 0) rather than get a silent zero.
    """
    if len(head_logits) == 0:
        raise ValueError("multi_supervision got no head logits: with blocks=1 there are no intermediate "
                         "heads; set the multi-supervision weight to 0 instead")
    return torch.stack([cross_entropy(logits, target) for logits in head_logits]).sum()


def _round_half_up(num: int, den: int) -> int:
    """floor(num / den + 1/2) for non-negative integers, exact (no float rounding, no banker's rounding)."""
    return (2 * num + den) // (2 * den)


def block_ends(layers: int, blocks: int) -> list[int]:
    """The layer after which block i ends, i = 1..blocks: round_half_up(i * layers / blocks).

    Index k means "the output of the first k decoder layers" (hidden_states[k] in transformers, with
    hidden_states[0] the embeddings), so the last block end is `layers`, the final output.
    Requires 1 <= blocks <= layers; then the ends are strictly increasing and each block holds
    floor or ceil of layers / blocks layers.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    if blocks > layers:
        raise ValueError(f"{blocks} blocks cannot be cut from {layers} layers (each block needs at least "
                         f"one layer); use blocks <= {layers}")
    return [_round_half_up(i * layers, blocks) for i in range(1, blocks + 1)]


def block_pairs(student_layers: int, teacher_layers: int, blocks: int) -> list[tuple[int, int]]:
    """Matched (student_block_end, teacher_block_end) layer indices for i = 1..blocks.

    Rule: block i of a depth-D model ends after layer round_half_up(i * D / b) (`block_ends`), for
    student (D = N) and teacher (D = M) alike; so block i of each sits at the same relative depth
    i / b, rounded to the nearest layer (halves up). The last pair is always (N, M), the final outputs,
    and both sequences are strictly increasing. b > N (or b > M) is an error.

    Compared to the authors' code, which uses ((N // b) * i, (M // b) * i):
    - where b divides the depth, both rules give the same indices (8 -> 4, b = 4: (1,2),(2,4),(3,6),(4,8));
    - where it does not, theirs is floor(D / b) * i <= ours, and theirs ends at (D // b) * b < D:
      30 layers, b = 4 gives 7, 14, 21, 28 there (the last 2 layers never matched) against
      8, 15, 23, 30 here; b = 8 gives 3, 6, ..., 24 there against 4, 8, 11, 15, 19, 23, 26, 30 here.
    """
    ends_s = block_ends(student_layers, blocks)
    ends_t = block_ends(teacher_layers, blocks)
    return list(zip(ends_s, ends_t))
