"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018 (arXiv 1808.09781). A causal
Transformer over the item sequence; the hidden state at position t scores the item at t + 1 by a dot
product with the (shared) item embedding table. Every position of a training row is a target in one
forward pass (`targets="all"` examples), so an epoch costs one pass per user, not one per prefix.

In SLMRec its item embedding table (`item_table()`, d0 = 128 in the authors' code) is pretrained here
and read frozen by the LLM recommenders.

NOTE: departures from the paper, each a choice a reader can change:
- loss: `loss="ce"` (default) is cross-entropy over all items (as RecBole and the SLMRec authors' SASRec
  do); the paper's binary cross-entropy with one sampled negative a position is `loss="bce"`.
- positions are counted from the most recent item (the last column has position 0), so the same user
  gets the same scores however much left padding the row carries; with a fixed window this is only a
  relabelling of the paper's absolute positions.
- padded slots are masked as attention keys (the paper zeroes their embeddings but lets queries attend
  to them); a padded query attends to itself only, which keeps softmax finite and touches no real row.
- pre-LayerNorm blocks with a final LayerNorm and a GELU feed-forward of width `inner` (the paper:
  post-residual LayerNorm as in its released code, ReLU, width = hidden); embeddings are not scaled
  by sqrt(hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import SeqRecommender


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
    """Pre-LayerNorm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


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


@dataclass
class SASRecConfig:
    max_len: int = 50  # items of history the model reads (positions learned)
    hidden: int = 64  # embedding and hidden size d (the item table width; 128 for the LLM models)
    layers: int = 2  # Transformer blocks
    heads: int = 2  # attention heads
    inner: int = 256  # feed-forward width
    dropout: float = 0.5  # dropout on embeddings, attention weights, residual branches
    loss: str = "ce"  # "ce": softmax over all items; "bce": the paper's one sampled negative a position
    init_std: float = 0.02  # std of the normal initialisation

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "bce"):
            raise ValueError(f"SASRecConfig.loss must be 'ce' or 'bce', got {self.loss!r}")


class SASRec(SeqRecommender):
    def __init__(self, n_items: int, cfg: SASRecConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SASRecConfig()
        self.n_items, self.max_len = n_items, cfg.max_len
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)  # index 0 = the most recent item
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.inner, cfg.dropout) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        init_weights(self, cfg.init_std)

    def encode(self, input: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position (B, L, D); the model reads the last `max_len` columns."""
        input = input[:, -self.max_len :]
        L = input.shape[1]
        pos = torch.arange(L - 1, -1, -1, device=input.device)  # (L,) distance from the last column
        x = self.drop(self.item_emb(input) + self.pos_emb(pos))  # (B, L, D)
        mask = attention_mask(input, causal=True)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        input, target = batch["input"], batch["target"]  # (B, L), (B, L)
        if input.shape[1] > self.max_len:
            raise ValueError(f"training rows have {input.shape[1]} columns, more than max_len {self.max_len}: "
                             "build the examples with the model's max_len")
        hs, tgts = [], []
        for rows, w in length_groups(input):  # each group trimmed to its longest row
            h = self.encode(input[rows, -w:])  # (b, w, D)
            t = target[rows, -w:]  # (b, w)
            keep = t > 0  # only real targets cost anything: logits for padded slots are never built
            hs.append(h[keep])
            tgts.append(t[keep])
        h, tgt = torch.cat(hs), torch.cat(tgts)  # (N, D), (N,)
        if self.cfg.loss == "ce":
            loss = softmax_ce(h, self.item_emb.weight[1:], tgt - 1)  # padding is never a class
        else:
            neg = torch.randint(1, self.n_items + 1, tgt.shape, device=tgt.device)  # (N,)
            neg = torch.where(neg == tgt, neg % self.n_items + 1, neg)  # never the positive itself
            pos_logit = (h * self.item_emb(tgt)).sum(-1)
            neg_logit = (h * self.item_emb(neg)).sum(-1)
            loss = F.softplus(-pos_logit).mean() + F.softplus(neg_logit).mean()
        return loss, {self.cfg.loss: loss.item()}

    def user_vector(self, input: torch.Tensor) -> torch.Tensor:
        """Hidden state after the last column (B, D), computed per length group."""
        input = input[:, -self.max_len :]
        out = torch.empty(input.shape[0], self.cfg.hidden, device=input.device)
        for rows, w in length_groups(input):
            out[rows] = self.encode(input[rows, -w:])[:, -1].to(out.dtype)
        return out

    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        return self.user_vector(input) @ self.item_emb.weight.T  # (B, n_items + 1)

    def score_candidates(self, input: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        user = self.user_vector(input)  # (B, D)
        return torch.einsum("bd,bcd->bc", user, self.item_emb(candidates))  # (B, C)

    def item_table(self) -> torch.Tensor:
        """The item embedding weight [n_items + 1, hidden] (row 0 = padding, zeros), detached.

        The LLM recommenders read it frozen: `nn.Embedding.from_pretrained(sasrec.item_table(), freeze=True)`.
        """
        return self.item_emb.weight.detach().clone()
