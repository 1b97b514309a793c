"""GRU4Rec: a recurrent network over the item sequence.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016
(arXiv 1511.06939). A GRU reads the items in order; its state after item t scores item t + 1.

NOTE: departures from the paper, as in the sequential-recommendation literature that reports GRU4Rec
on Amazon data (S3-Rec, ICLRec, RecBole):
- whole user sequences (left padded, every position a target in one pass) instead of session-parallel
  mini-batches;
- cross-entropy over all items instead of the paper's TOP1 / BPR ranking losses with in-batch
  negatives;
- an item embedding layer (the paper feeds one-hot items) with dropout, and a linear map from the GRU
  state to the embedding size, so that scores are dot products with the shared item table.
Padded slots are skipped with packed sequences, so left padding does not change a user's scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import SeqRecommender
from .layers import softmax_ce


@dataclass
class GRU4RecConfig:
    max_len: int = 50  # items of history the model reads
    embed: int = 64  # item embedding size
    hidden: int = 128  # GRU state size
    layers: int = 1  # stacked GRU layers
    dropout: float = 0.3  # dropout on the item embeddings (and between GRU layers)
    init_std: float = 0.02  # std of the normal initialisation of the item embeddings


class GRU4Rec(SeqRecommender):
    def __init__(self, n_items: int, cfg: GRU4RecConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GRU4RecConfig()
        self.n_items, self.max_len = n_items, cfg.max_len
        self.item_emb = nn.Embedding(n_items + 1, cfg.embed, padding_idx=0)  # row 0 = padding
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.embed, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.out = nn.Linear(cfg.hidden, cfg.embed)
        nn.init.normal_(self.item_emb.weight, std=cfg.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, input: torch.Tensor) -> torch.Tensor:
        """Output after every position (B, L, D); padded slots hold zeros mapped by `out`."""
        input = input[:, -self.max_len :]
        B, L = input.shape
        lengths = (input > 0).sum(1)  # (B,)
        # left padded -> right padded: column j of the new row is column j + (L - length) of the old
        cols = torch.arange(L, device=input.device)
        shift = (L - lengths)[:, None]  # (B, 1)
        right = input.gather(1, (cols + shift) % L)  # (B, L)
        x = self.drop(self.item_emb(right))  # (B, L, E)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=L)  # (B, L, H), right padded
        y = y.gather(1, ((cols - shift) % L)[:, :, None].expand(-1, -1, y.shape[2]))  # back to left padded
        return self.out(y)  # (B, L, E)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        input, target = batch["input"], batch["target"]  # (B, L), (B, L)
        if input.shape[1] > self.max_len:
            raise ValueError(f"training rows have {input.shape[1]} columns, more than max_len {self.max_len}: "
                             "build the examples with the model's max_len")
        keep = target > 0
        h = self.encode(input)[keep]  # (N, E)
        loss = softmax_ce(h, self.item_emb.weight[1:], target[keep] - 1)  # padding is never a class
        return loss, {"ce": loss.item()}

    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        return self.encode(input)[:, -1] @ self.item_emb.weight.T  # (B, n_items + 1)

    def score_candidates(self, input: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        user = self.encode(input)[:, -1]  # (B, E)
        return torch.einsum("be,bce->bc", user, self.item_emb(candidates))  # (B, C)
