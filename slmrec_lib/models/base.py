"""The small interface every recommender in the book shares (docs/architecture.md)."""

from __future__ import annotations

import torch
from torch import nn


class SeqRecommender(nn.Module):
    """A sequential recommender: padded item sequences in, scores over items out.

    Subclasses implement `forward(batch) -> (loss, parts)` and `score_all(input)`; `input` is a
    LongTensor [B, L] of item ids, left padded with 0; `batch["target"]` is [B, L] with 0 where a
    position carries no loss, and its last column is the item after the whole row.
    """

    n_items: int

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        """Scores of every item id for the next position: [B, n_items + 1], column 0 is padding."""
        raise NotImplementedError

    def score_candidates(self, input: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of the given candidate ids: [B, C]. Default: gather from `score_all`."""
        return self.score_all(input).gather(1, candidates)
