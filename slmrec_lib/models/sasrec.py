"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018 (arXiv 1808.09781). A causal
Transformer over the item sequence; the hidden state at position t scores the item at t + 1 by a dot
product with the (shared) item embedding table. Every position of a training row is a target in one
forward pass (`targets="all"` examples), so an epoch costs one pass per user, not one per prefix.

In SLMRec its item embedding table (`item_embeddings()`, d0 = 128 in the authors' code) is pretrained
here and read frozen by the LLM recommenders.

Variants are settings of `SASRecConfig`, not copies of the model:
- `loss="ce"` (default): cross-entropy over all items. NOTE: source: RecBole's SASRec and the SLMRec
  authors' `train_sr_trad.py` (which puts it on the last position only: `targets="last"` examples).
- `loss="bce"`: binary cross-entropy of the positive against one sampled negative a position. NOTE:
  source: Kang & McAuley 2018, Eq. 7; E4SRec's SASRec baseline and the S3-Rec / ICLRec tables train so.
- `negatives` (bce only): "target" (default) draws uniformly from all items except the target;
  "history" also excludes every item of the row's history. NOTE: source: the original SASRec code
  (excludes the user's training set), S3-Rec and ICLRec (exclude the user's whole sequence, its
  validation and test items too). Here the history is the training row itself, `batch["input"]` plus
  `batch["target"]` (for every `train_examples` mode that is the user's last max_len + 1 training items):
  no held-out item enters it, and items older than the window do not count. Draws use the global torch
  RNG, which `training.fit` seeds from `TrainConfig.seed` and checkpoints.
- `block`: "pre_ln" (default, today's): pre-LayerNorm blocks (GELU feed-forward of width `inner`) with
  a final LayerNorm; "post_ln_relu": post-LayerNorm, ReLU, with a LayerNorm on the embeddings instead
  of a final one; with `inner=hidden` this is the feed-forward of the original SASRec (NOTE: source:
  Kang & McAuley 2018, Sec. III-B, ReLU, width d); "post_ln_gelu": the same with GELU, the BERT layout
  of the S3-Rec / ICLRec SASRec (NOTE: source: S3-Rec `modules.py`, width 4 d, embedding LayerNorm).
  The original SASRec code (and the PyTorch port the SLMRec authors train) adds each residual to the
  normalised input (x = LN(x) + attn(LN(x), x)); neither layout here copies that exactly.

NOTE: departures from the paper, each a choice a reader can change:
- loss: `loss="ce"` (default), see above; the paper's loss is `loss="bce", negatives="history"`.
- positions are counted from the most recent item (the last column has position 0), so the same user
  gets the same scores however much left padding the row carries; with a fixed window this is only a
  relabelling of the paper's absolute positions.
- padded slots are masked as attention keys (the paper zeroes their embeddings but lets queries attend
  to them); a padded query attends to itself only, which keeps softmax finite and touches no real row.
- the default block is pre-LayerNorm with GELU of width `inner` (see `block` above); embeddings are
  not scaled by sqrt(hidden) and the feed-forward has no dropout between its two layers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .base import SeqRecommender
from .layers import BLOCKS, Block, attention_mask, bce_sampled, init_weights, length_groups, sample_negatives, softmax_ce

LOSSES = ("ce", "bce")
NEGATIVES = ("target", "history")


@dataclass
class SASRecConfig:
    max_len: int = 50  # items of history the model reads (positions learned)
    hidden: int = 64  # embedding and hidden size d (the item table width; 128 for the LLM models)
    layers: int = 2  # Transformer blocks
    heads: int = 2  # attention heads
    inner: int = 256  # feed-forward width
    dropout: float = 0.5  # dropout on embeddings, attention weights, residual branches
    loss: str = "ce"  # "ce": softmax over all items; "bce": the paper's one sampled negative a position
    negatives: str = "target"  # bce only: "target" excludes the target, "history" the row's whole history
    block: str = "pre_ln"  # "pre_ln" (GELU, final LayerNorm) | "post_ln_relu" | "post_ln_gelu" (see layers.Block)
    init_std: float = 0.02  # std of the normal initialisation

    def __post_init__(self) -> None:
        for name, allowed in (("loss", LOSSES), ("negatives", NEGATIVES), ("block", BLOCKS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"SASRecConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.negatives != "target" and self.loss != "bce":
            raise ValueError(f"SASRecConfig.negatives={self.negatives!r} only applies to loss='bce' "
                             f"(cross-entropy scores every item); leave it at 'target' or set loss='bce'")


class SASRec(SeqRecommender):
    def __init__(self, n_items: int, cfg: SASRecConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SASRecConfig()
        self.n_items, self.max_len = n_items, cfg.max_len
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)  # index 0 = the most recent item
        pre = cfg.block == "pre_ln"
        self.emb_ln = nn.Identity() if pre else nn.LayerNorm(cfg.hidden)  # post-LN: normalise the embeddings
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.inner, cfg.dropout, cfg.block)
                                    for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden) if pre else nn.Identity()  # post-LN blocks end normalised
        init_weights(self, cfg.init_std)

    def encode(self, input: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position (B, L, D); the model reads the last `max_len` columns."""
        input = input[:, -self.max_len :]
        L = input.shape[1]
        pos = torch.arange(L - 1, -1, -1, device=input.device)  # (L,) distance from the last column
        x = self.drop(self.emb_ln(self.item_emb(input) + self.pos_emb(pos)))  # (B, L, D)
        mask = attention_mask(input, causal=True)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        input, target = batch["input"], batch["target"]  # (B, L), (B, L)
        if input.shape[1] > self.max_len:
            raise ValueError(f"training rows have {input.shape[1]} columns, more than max_len {self.max_len}: "
                             "build the examples with the model's max_len")
        hs, tgts, owners = [], [], []
        for rows, w in length_groups(input):  # each group trimmed to its longest row
            h = self.encode(input[rows, -w:])  # (b, w, D)
            t = target[rows, -w:]  # (b, w)
            keep = t > 0  # only real targets cost anything: logits for padded slots are never built
            hs.append(h[keep])
            tgts.append(t[keep])
            owners.append(rows[:, None].expand_as(t)[keep])  # (n,) the batch row of each target
        h, tgt, row = torch.cat(hs), torch.cat(tgts), torch.cat(owners)  # (N, D), (N,), (N,)
        if self.cfg.loss == "ce":
            loss = softmax_ce(h, self.item_emb.weight[1:], tgt - 1)  # padding is never a class
        else:
            history = torch.cat([input, target], 1) if self.cfg.negatives == "history" else None  # (B, 2L)
            neg = sample_negatives(tgt, self.n_items, history, row if history is not None else None)  # (N,)
            loss = bce_sampled(h, self.item_emb(tgt), self.item_emb(neg))
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

    def item_embeddings(self) -> torch.Tensor:
        """The item embedding weight [n_items + 1, hidden] (row 0 = padding, zeros), detached copy.

        The LLM recommenders read it frozen: `nn.Embedding.from_pretrained(sasrec.item_embeddings(), freeze=True)`.
        """
        return self.item_emb.weight.detach().clone()

    def item_table(self) -> torch.Tensor:
        """Deprecated name of `item_embeddings()`, kept until its callers are renamed."""
        warnings.warn("SASRec.item_table() is renamed item_embeddings()", DeprecationWarning, stacklevel=2)
        return self.item_embeddings()
