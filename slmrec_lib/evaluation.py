"""Ranking evaluation: the paper's sampled protocol (1 positive + 999 negatives) and full ranking.

Paper (SLMRec, Sec. 5.1): leave-one-out; each test user's positive is ranked against 999 items the
user never interacted with; HR@1/5/10, NDCG@5/10, MRR.
  NOTE: the authors' code resamples the negatives at every evaluation; here they are drawn once per
  user from a seed and reused by every model and every evaluation, so two models meet the same
  candidates. Ties count against the positive (a constant scorer ranks last, never first); scores
  are compared in float32 and the ties of each user can be counted (`rank_positives(return_ties=True)`).
  NaN or +inf scores are an error, never a rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Split, eval_inputs, pad_left, sample_negatives

# sample_negatives lives in data (a Split draws its negatives there) and is re-exported here
__all__ = ["EvalProtocol", "EvaluationError", "SAMPLED_999", "FULL", "sample_negatives", "metrics_from_ranks",
           "rank_positives", "evaluate"]


class EvaluationError(ValueError):
    """A model's scores cannot be ranked (NaN or +inf); the message names the stage, protocol and user."""


@dataclass(frozen=True)
class EvalProtocol:
    kind: str = "sampled"  # "sampled": 1 positive + n_negatives; "full": every item, history masked
    n_negatives: int = 999  # negatives per user under "sampled"
    seed: int = 0  # seed of the negative sampler (and of the history shuffle)
    ks: tuple[int, ...] = (1, 5, 10, 20)  # cut-offs of HR@k and NDCG@k (NDCG@1 equals HR@1 and is left out)
    shuffle: bool = False  # each user's input items in a seeded random order (same users, targets, candidates)

    def __post_init__(self):
        if self.kind not in ("sampled", "full"):
            raise ValueError(f"unknown evaluation protocol {self.kind!r}: use 'sampled' or 'full'")

    @property
    def name(self) -> str:
        """e.g. "sampled-999-seed0", "full", "sampled-999-seed0-shuffled", "full-shuffled" (seed 0) or
        "full-shuffled-seed3"."""
        if self.kind == "sampled":
            base = f"sampled-{self.n_negatives}-seed{self.seed}"
            return base + "-shuffled" if self.shuffle else base
        if not self.shuffle:
            return "full"
        return "full-shuffled" if self.seed == 0 else f"full-shuffled-seed{self.seed}"

    @classmethod
    def from_name(cls, name: str, ks: tuple[int, ...] = (1, 5, 10, 20)) -> "EvalProtocol":
        """The protocol a `name` spells (the inverse of `.name`)."""
        parts = name.split("-")
        shuffle = "shuffled" in parts
        rest = [p for p in parts if p != "shuffled"]
        seeds = [p for p in rest if p.startswith("seed") and p[4:].isdigit()]
        seed = int(seeds[0][4:]) if seeds else 0
        if rest[:1] == ["full"] and len(rest) == 1 + len(seeds):
            proto = cls("full", seed=seed, ks=ks, shuffle=shuffle)
        elif rest[:1] == ["sampled"] and len(rest) == 3 and rest[1].isdigit() and len(seeds) == 1:
            proto = cls("sampled", int(rest[1]), seed, ks, shuffle)
        else:
            proto = None
        if proto is None or proto.name != name:
            raise ValueError(
                f"unknown protocol name {name!r}: use e.g. 'sampled-999-seed0', 'full', "
                "'sampled-999-seed0-shuffled' or 'full-shuffled'"
            )
        return proto


SAMPLED_999 = EvalProtocol("sampled", 999, 0)
FULL = EvalProtocol("full")


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, float]:
    """0-based ranks of the positives -> HR@k, NDCG@k (k > 1) and MRR (no cut-off), means over users."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = float(hit.mean())
        if k > 1:
            out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["MRR"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def _device(model: torch.nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _check_finite(scores: torch.Tensor, users: np.ndarray, model, protocol: EvalProtocol, stage: str) -> None:
    """NaN or +inf scores are an error (they would rank a positive first); -inf is a model's "never
    recommended" (P5 outside its beams, the padding column) and ranks the positive last."""
    if bool(scores.amax() < float("inf")):  # amax is NaN if any score is, +inf if any is: one pass
        return
    bad = ~(scores < float("inf"))  # NaN and +inf (NaN compares False)
    if bool(bad.any()):
        row = int(bad.any(dim=1).nonzero()[0, 0])
        value = scores[row][bad[row]][0].item()
        raise EvaluationError(
            f"{type(model).__name__} gave a non-finite score ({value}) in the {stage} stage under protocol "
            f"{protocol.name}, first for user index {int(users[row])} ({int(bad.any(dim=1).sum())} users of this "
            f"batch of {len(users)}). A NaN or +inf would rank the positive first; check the model for a "
            "diverged training (NaN loss) or overflowing scores (score in fp32)."
        )


@torch.no_grad()
def rank_positives(
    model,
    split: Split,
    protocol: EvalProtocol,
    stage: str = "test",
    max_len: int | None = None,
    batch_size: int = 256,
    users: np.ndarray | None = None,
    progress: bool = False,
    return_ties: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """0-based rank of each user's positive under the protocol: the number of eligible candidates that
    score at least as high as it (ties count against it, a pessimistic rank).

    Scores are cast to float32 before they are compared (a model under bf16 autocast returns bf16;
    asking the model for fp32 scores is the model's side). NaN or +inf scores raise EvaluationError.
    With `return_ties` it also returns, per user, how many eligible candidates score exactly the
    positive's score. Under "full", eligible means every item but padding, the user's other history
    items and the positive itself. `max_len` (items of history the model reads) defaults to the
    model's own `max_len` attribute; `protocol.shuffle` shuffles the items it reads (`data.shuffle_inputs`).
    """
    max_len = max_len or model.max_len
    inputs, targets, histories = eval_inputs(split, stage, max_len, protocol.seed if protocol.shuffle else None)
    users = np.arange(split.n_users) if users is None else np.asarray(users)
    negatives = split.negatives(protocol.n_negatives, protocol.seed) if protocol.kind == "sampled" else None
    device = _device(model)
    was_training = model.training
    model.eval()
    ranks, ties = [], []
    batches = range(0, len(users), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"eval {stage} {protocol.name}", leave=False)
    for start in batches:
        idx = users[start : start + batch_size]
        inp = inputs[idx].to(device)
        pos = targets[idx].to(device)
        if negatives is not None:
            cand = torch.cat([pos[:, None], torch.from_numpy(negatives[idx]).to(device)], dim=1)  # (B, 1+n)
            scores = model.score_candidates(inp, cand).to(torch.float32)
            _check_finite(scores, idx, model, protocol, stage)
            above = scores[:, 1:] >= scores[:, :1]
            rank = above.sum(dim=1)
            if return_ties:
                tie = (scores[:, 1:] == scores[:, :1]).sum(dim=1)
        else:
            scores = model.score_all(inp).to(torch.float32)  # (B, n_items + 1), read only
            _check_finite(scores[:, 1:], idx, model, protocol, stage)
            pos_score = scores.gather(1, pos[:, None])  # (B, 1)
            # Items that do not compete: padding 0, the user's own items and the positive itself. They
            # are counted over all columns and then taken off again, each distinct id once.
            hist = pad_left([histories[u] for u in idx], max(len(histories[u]) for u in idx)).to(device)
            skip = torch.cat([torch.zeros_like(pos)[:, None], pos[:, None], hist], dim=1).sort(dim=1).values
            first = torch.ones_like(skip, dtype=torch.bool)
            first[:, 1:] = skip[:, 1:] != skip[:, :-1]
            skipped = scores.gather(1, skip)  # (B, 2 + H)
            rank = (scores >= pos_score).sum(dim=1) - ((skipped >= pos_score) & first).sum(dim=1)
            if return_ties:
                tie = (scores == pos_score).sum(dim=1) - ((skipped == pos_score) & first).sum(dim=1)
        ranks.append(rank.cpu().numpy())
        if return_ties:
            ties.append(tie.cpu().numpy())
    model.train(was_training)
    empty = np.zeros(0, dtype=np.int64)
    ranks_out = np.concatenate(ranks) if ranks else empty
    if return_ties:
        return ranks_out, (np.concatenate(ties) if ties else empty)
    return ranks_out


def evaluate(
    model,
    split: Split,
    protocol: EvalProtocol = SAMPLED_999,
    stage: str = "test",
    max_len: int | None = None,
    batch_size: int = 256,
    users: np.ndarray | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of `model` on a stage ("valid" or "test") under `protocol`; see `rank_positives`."""
    ranks = rank_positives(model, split, protocol, stage, max_len, batch_size, users, progress)
    return metrics_from_ranks(ranks, protocol.ks)
