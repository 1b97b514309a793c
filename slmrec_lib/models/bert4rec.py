"""BERT4Rec: a bidirectional Transformer trained by masked item prediction (Cloze).

Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
Transformer", CIKM 2019 (arXiv 1904.06690). Random items of the training sequence are replaced by a
[mask] token (id n_items + 1) and predicted from both sides; to recommend, a [mask] is appended after
the history and its output scores every item.

NOTE: departures from the paper:
- the training window is the training sequence itself (the row's items plus its last target), re-masked
  at random on every pass (the paper pre-computes `dupe_factor` masked copies); a row that drew no
  mask gets its last item masked, and the paper's extra "mask only the last item" copies are left out;
- positions count from the right and padded keys are masked, as in `sasrec.py`, so left padding does
  not change a user's scores; pre-LayerNorm blocks with a final LayerNorm;
- when the history fills the window, the oldest item is dropped to make room for the appended [mask].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import SeqRecommender
from .layers import Block, attention_mask, init_weights, length_groups, softmax_ce


@dataclass
class BERT4RecConfig:
    max_len: int = 50  # window length, the appended [mask] included
    hidden: int = 64  # embedding and hidden size
    layers: int = 2  # Transformer blocks
    heads: int = 2  # attention heads
    inner: int = 256  # feed-forward width
    dropout: float = 0.2  # dropout on embeddings, attention weights, residual branches
    mask_prob: float = 0.6  # share of the training items replaced by [mask] (the paper's best for Beauty)
    init_std: float = 0.02  # std of the normal initialisation


class BERT4Rec(SeqRecommender):
    def __init__(self, n_items: int, cfg: BERT4RecConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or BERT4RecConfig()
        self.n_items, self.max_len = n_items, cfg.max_len
        self.mask_id = n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, cfg.hidden, padding_idx=0)  # 0 = padding, n_items + 1 = [mask]
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)  # index 0 = the last column
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.inner, cfg.dropout) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden))
        self.out_bias = nn.Parameter(torch.zeros(n_items + 1))
        init_weights(self, cfg.init_std)

    def encode(self, input: torch.Tensor) -> torch.Tensor:
        """Bidirectional hidden states (B, L, D) of a window that may hold [mask] tokens."""
        L = input.shape[1]
        if L > self.max_len:
            raise ValueError(f"window of {L} columns is longer than max_len {self.max_len}")
        pos = torch.arange(L - 1, -1, -1, device=input.device)  # (L,)
        x = self.drop(self.item_emb(input) + self.pos_emb(pos))  # (B, L, D)
        mask = attention_mask(input, causal=False)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, n_items + 1) scores over ids 0..n_items (never the [mask] row)."""
        return self.head(h) @ self.item_emb.weight[: self.n_items + 1].T + self.out_bias

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        input, target = batch["input"], batch["target"]  # (B, L), (B, L)
        if (target[:, -1] <= 0).any():
            raise ValueError("BERT4Rec needs the next item in target[:, -1] of every row (any train_examples mode)")
        seq = torch.cat([input, target[:, -1:]], dim=1)[:, 1:]  # (B, L) the training window, newest last
        seq = seq[:, -self.max_len :]
        real = seq > 0
        masked = (torch.rand(seq.shape, device=seq.device) < self.cfg.mask_prob) & real  # (B, L)
        masked[~masked.any(1), -1] = True  # every row predicts at least one item
        window = seq.masked_fill(masked, self.mask_id)
        hs, tgts = [], []
        for rows, w in length_groups(window):  # each group trimmed to its longest row
            m = masked[rows, -w:]
            hs.append(self.encode(window[rows, -w:])[m])
            tgts.append(seq[rows, -w:][m])
        h = self.head(torch.cat(hs))  # (N, D)
        # the output bias rides as one more column: [h, 1] . [item row, bias] = _logits without padding
        h = torch.cat([h, torch.ones_like(h[:, :1])], dim=1)  # (N, D + 1)
        W = torch.cat([self.item_emb.weight[1 : self.n_items + 1], self.out_bias[1:, None]], dim=1)  # (n_items, D + 1)
        loss = softmax_ce(h, W, torch.cat(tgts) - 1)  # padding is never a class
        return loss, {"ce": loss.item()}

    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        keep = self.max_len - 1  # history columns that fit beside the appended [mask]
        history = input[:, -keep:]
        window = torch.cat([history, torch.full_like(history[:, :1], self.mask_id)], dim=1)  # (B, <= max_len)
        user = torch.empty(input.shape[0], self.cfg.hidden, device=input.device)
        for rows, w in length_groups(window):
            user[rows] = self.encode(window[rows, -w:])[:, -1].to(user.dtype)
        return self._logits(user)  # (B, n_items + 1)
