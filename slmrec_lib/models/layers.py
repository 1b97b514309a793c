"""Parts shared by the book's Transformer recommenders (SASRec, BERT4Rec) and GRU4Rec's loss.

- `SelfAttention`: multi-head attention with a boolean mask (True = may attend);
- `Block`: one Transformer block in one of three layouts (`BLOCKS`): "pre_ln" (x + f(LN(x)), GELU;
  the model adds a final LayerNorm), "post_ln_relu" and "post_ln_gelu" (LN(x + f(x)), the BERT layout
  of the S3-Rec / ICLRec SASRec; the embeddings get a LayerNorm instead of a final one);
- `attention_mask`: padded keys masked, causal or bidirectional;
- `length_groups`: rows of a left-padded batch grouped by length, so each group runs trimmed;
- `softmax_ce`: cross-entropy over all items, chunked on the CPU;
- `bce_sampled`: binary cross-entropy of one positive against one sampled negative a position;
- `sample_negatives`: one uniform negative a position, excluding the target or the row's history;
- `init_weights`: normal init of linear and embedding weights, padding row zeroed.

This module imports only torch: the model files import from it, never the other way round.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("pre_ln", "post_ln_relu", "post_ln_gelu")  # Block layouts; see Block


class SelfAttention(nn.Module):
    """Multi-head self-attention with a boolean mask (True = may attend)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x (B, L, D)
        q, k, v = (t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """One Transformer block over (B, L, D) with a boolean attention mask.

    layout "pre_ln":       x = x + attn(LN(x)); x = x + ffn(LN(x)), GELU feed-forward (GPT-2 style);
    layout "post_ln_relu": x = LN(x + attn(x)); x = LN(x + ffn(x)), ReLU feed-forward;
    layout "post_ln_gelu": the same with GELU (BERT; the S3-Rec / ICLRec SASRec).
    The feed-forward is Linear(hidden, inner) -> activation -> Linear(inner, hidden) -> dropout (BERT's and
    S3-Rec's order; the original SASRec code also drops out after the activation).
    """

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, layout: str = "pre_ln"):
        super().__init__()
        if layout not in BLOCKS:
            raise ValueError(f"block layout must be one of {BLOCKS}, got {layout!r}")
        self.pre = layout == "pre_ln"
        act = nn.ReLU() if layout == "post_ln_relu" else nn.GELU()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), act, nn.Linear(inner, hidden), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.attn(self.ln1(x), mask)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x, mask))
        return self.ln2(x + self.mlp(x))


def attention_mask(input: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) bool: query i may attend to key j if j is an item (and j <= i when causal).

    Every position may attend to itself, so padded queries never see an empty row (no NaN).
    """
    L = input.shape[1]
    keys = (input > 0)[:, None, None, :]  # (B, 1, 1, L)
    eye = torch.eye(L, dtype=torch.bool, device=input.device)
    if causal:
        keys = keys & torch.ones(L, L, dtype=torch.bool, device=input.device).tril()
    return keys | eye


def length_groups(input: torch.Tensor, by_length: bool | None = None) -> list[tuple[torch.Tensor, int]]:
    """Rows of a left-padded batch grouped by length: [(row indices, width)], width a power of two
    (or the full width) at least as long as every row of its group.

    Rows of a batch are independent, so running each group trimmed to its width gives the same
    outputs as the padded batch (positions count from the right), at a fraction of the cost: most
    users are short, and a batch is as wide as its longest user. That saving is the CPU's; on a GPU
    a small model is bound by kernel launches and host syncs, which grouping multiplies (a pass and
    a sync per group; a grouped 2-layer SASRec step took 40 ms on an H200), so by default
    (`by_length=None`) a batch on any other device stays one group. benchmarks/bench_length_groups.py
    times both ways on the device at hand.
    """
    L = input.shape[1]
    if not (input.device.type == "cpu" if by_length is None else by_length):
        return [(torch.arange(input.shape[0], device=input.device), L)]
    lengths = (input > 0).sum(1)  # (B,)
    width = torch.ones_like(lengths)
    while True:  # smallest power of two >= length, at most L
        short = width < lengths
        if not short.any():
            break
        width = torch.where(short, width * 2, width)
    width = width.clamp(max=L)
    return [((width == w).nonzero().squeeze(1), int(w)) for w in width.unique().tolist()]


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of `h @ W.T` against `target`, a chunk of rows at a time, with the gradients
    computed during the forward pass: the (N, n_items) logits never exist whole, so each chunk stays in
    the CPU cache. Same value and gradients as `F.cross_entropy(h @ W.T, target)`."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, W: torch.Tensor, target: torch.Tensor, chunk: int) -> torch.Tensor:
        N = h.shape[0]
        grad_h, grad_W = torch.empty_like(h), torch.zeros_like(W)
        total = torch.zeros((), dtype=torch.float64)
        for s in range(0, N, chunk):
            hc, tc = h[s : s + chunk], target[s : s + chunk]  # (c, D), (c,)
            logits = hc @ W.T  # (c, C)
            rows = torch.arange(len(tc), device=h.device)
            picked = logits[rows, tc]  # (c,)
            top = logits.amax(1, keepdim=True)  # (c, 1)
            p = logits.sub_(top).exp_()  # (c, C), unnormalised probabilities, in place
            norm = p.sum(1, keepdim=True)  # (c, 1)
            total += (top.squeeze(1) + norm.squeeze(1).log() - picked).sum()
            p.div_(norm)
            p[rows, tc] -= 1.0  # d loss_i / d logits_i = softmax - onehot
            grad_h[s : s + chunk] = p @ W
            grad_W.addmm_(p.T, hc)
        ctx.save_for_backward(grad_h, grad_W)
        ctx.n = N
        return (total / N).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_W = ctx.saved_tensors
        scale = grad_out / ctx.n
        return grad_h * scale, grad_W * scale, None, None


def softmax_ce(h: torch.Tensor, W: torch.Tensor, target: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Mean cross-entropy over all rows of `W` (classes) for user vectors `h` (N, D), `target` (N,) in
    0..len(W)-1. On the CPU while training, the chunked version (about 1.4x faster, same numbers);
    elsewhere (GPU, autocast, no grad) the plain one."""
    if h.device.type == "cpu" and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu") and len(h):
        return _ChunkedSoftmaxCE.apply(h, W, target, chunk)
    return F.cross_entropy(h @ W.T, target)


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) for linear and embedding weights, zero biases, unit LayerNorms; padding row 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def bce_sampled(h: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of one positive and one negative item vector per user vector.

    h, pos, neg: (N, D). Returns mean(-log sigmoid(h.pos)) + mean(-log(1 - sigmoid(h.neg))), the loss of
    Kang & McAuley 2018 (Eq. 7, averaged over positions instead of summed).
    """
    pos_logit = (h * pos).sum(-1)  # (N,)
    neg_logit = (h * neg).sum(-1)  # (N,)
    return F.softplus(-pos_logit).mean() + F.softplus(neg_logit).mean()


def sample_negatives(target: torch.Tensor, n_items: int, history: torch.Tensor | None = None,
                     row: torch.Tensor | None = None, max_rounds: int = 1000) -> torch.Tensor:
    """One uniform item id in 1..n_items for each target, drawn from the global torch RNG of the
    target's device (the training loop seeds and checkpoints it).

    target: (N,) positive ids. Without `history`, a draw equal to its target is moved to the next id
    (the draw never equals the target). With `history` (B, H) of item ids (0 = padding) and `row` (N,)
    naming each target's row, a draw found in its row's history (or equal to its target) is drawn
    again until none is; a row whose history holds every item is an error.
    """
    neg = torch.randint(1, n_items + 1, target.shape, device=target.device)  # (N,)
    if history is None:
        return torch.where(neg == target, neg % n_items + 1, neg)
    if row is None or row.shape != target.shape:
        raise ValueError("sample_negatives with a history needs `row`, the history row of each target, shaped like target")
    seen = torch.cat([history, target.new_zeros(len(history), 1)], 1)  # (B, H + 1): column H holds nothing
    if len(target):
        distinct = torch.zeros(len(history), n_items + 1, dtype=torch.bool, device=target.device)
        distinct.scatter_(1, seen.clamp(min=0), True)
        distinct[:, 0] = False
        full = distinct.sum(1) >= n_items
        if full.any():
            raise ValueError(f"row {int(full.nonzero()[0])} of the batch holds all {n_items} items in its history: "
                             "no negative is left to sample; use negatives='target' or more items")
    for _ in range(max_rounds):
        hit = (neg == target) | (seen[row] == neg[:, None]).any(1)  # (N,)
        if not hit.any():
            return neg
        neg = torch.where(hit, torch.randint(1, n_items + 1, target.shape, device=target.device), neg)
    raise RuntimeError(f"sample_negatives: some draws still hit the history after {max_rounds} rounds")
