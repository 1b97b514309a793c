"""Popularity: every user gets the same ranking, items by how often they occur in training.

The floor every learned model must clear. Counts come from the training part of each sequence only
(`Split.train`), so the validation and test items never leak into the scores.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import SeqRecommender


class Popularity(SeqRecommender):
    max_len = 1  # reads no history: every user gets the same ranking
    def __init__(self, n_items: int, counts: torch.Tensor | np.ndarray | None = None):
        super().__init__()
        self.n_items = n_items
        counts = torch.zeros(n_items + 1) if counts is None else torch.as_tensor(counts, dtype=torch.float32)
        if counts.shape != (n_items + 1,):
            raise ValueError(f"counts must have shape ({n_items + 1},) (index 0 = padding), got {tuple(counts.shape)}")
        self.register_buffer("counts", counts.clone())

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray], n_items: int) -> "Popularity":
        """Counts of each item id over `sequences` (e.g. `split.train`); padding (0) gets -inf."""
        flat = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
        counts = np.bincount(flat, minlength=n_items + 1).astype(np.float32)
        if len(counts) > n_items + 1:
            raise ValueError(f"sequences hold item id {len(counts) - 1}, above n_items {n_items}")
        counts[0] = -np.inf
        return cls(n_items, counts)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise TypeError("Popularity has nothing to train: build it with Popularity.from_sequences(split.train, n_items)")

    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        return self.counts[None, :].repeat(input.shape[0], 1)  # (B, n_items + 1), a copy the caller may edit
