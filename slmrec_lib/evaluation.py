"""Ranking evaluation: the paper's sampled protocol (1 positive + 999 negatives) and full ranking.

Paper (SLMRec, Sec. 5.1): leave-one-out; each test user's positive is ranked against 999 items the
user never interacted with; HR@1/5/10, NDCG@5/10, MRR.
  NOTE: the authors' code resamples the negatives at every evaluation; here they are drawn once per
  user from a seed and reused by every model and every evaluation, so two models meet the same
  candidates. Ties count against the positive (a constant scorer ranks last, never first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Split, eval_inputs, pad_left, sample_negatives

# sample_negatives lives in data (a Split draws its negatives there) and is re-exported here
__all__ = ["EvalProtocol", "SAMPLED_999", "FULL", "sample_negatives", "metrics_from_ranks", "rank_positives",
           "evaluate"]


@dataclass(frozen=True)
class EvalProtocol:
    kind: str = "sampled"  # "sampled": 1 positive + n_negatives; "full": every item, history masked
    n_negatives: int = 999  # negatives per user under "sampled"
    seed: int = 0  # seed of the negative sampler
    ks: tuple[int, ...] = (1, 5, 10, 20)  # cut-offs of HR@k and NDCG@k (NDCG@1 equals HR@1 and is left out)

    def __post_init__(self):
        if self.kind not in ("sampled", "full"):
            raise ValueError(f"unknown evaluation protocol {self.kind!r}: use 'sampled' or 'full'")

    @property
    def name(self) -> str:
        return "full" if self.kind == "full" else f"sampled-{self.n_negatives}-seed{self.seed}"


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
) -> np.ndarray:
    """0-based rank of each user's positive under the protocol (ties count against it).

    `max_len` (items of history the model reads) defaults to the model's own `max_len` attribute.
    """
    max_len = max_len or model.max_len
    inputs, targets, histories = eval_inputs(split, stage, max_len)
    users = np.arange(split.n_users) if users is None else np.asarray(users)
    negatives = split.negatives(protocol.n_negatives, protocol.seed) if protocol.kind == "sampled" else None
    device = _device(model)
    was_training = model.training
    model.eval()
    ranks = []
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
            scores = model.score_candidates(inp, cand).float()
            rank = (scores[:, 1:] >= scores[:, :1]).sum(dim=1)
        else:
            scores = model.score_all(inp).float()  # (B, n_items + 1)
            pos_score = scores.gather(1, pos[:, None])
            hist = pad_left([histories[u] for u in idx], max(len(histories[u]) for u in idx)).to(device)
            scores.scatter_(1, hist, float("-inf"))  # the user's own items (and padding id 0)
            scores[:, 0] = float("-inf")
            scores.scatter_(1, pos[:, None], pos_score)  # the positive keeps its score even if repeated
            rank = (scores >= pos_score).sum(dim=1) - 1
        ranks.append(rank.cpu().numpy())
    model.train(was_training)
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


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
