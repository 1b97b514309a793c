"""The paper's own numbers (paper/*.csv) and which of its rows each of our models plays.

`paper_row(columns, book)` maps a model, given by its tidy columns (a `config.columns(cfg)` dict, a
row of `runs.groups`), to the paper's main-table row, or None. The rule, from the columns only:
- GRU4Rec, BERT4Rec, SASRec: the baseline of the profile (role "", every position a target; for
  SASRec the profile's own loss and negatives, so a ladder of other SASRec trainings maps to none);
- P5 at the profile's deepest depth on its backbone: Open-P5_LLaMa;
- E4SRec_k on the profile's backbone and training rows: k = depth plays E4SRec* (the reference of the
  paper's average improvement), else k = mid plays E4SRec_8*, k = small E4SRec_4*. Depth is looked
  at first: where the profile has depth = mid (cpu: 8 and 8), E4SRec_8 plays E4SRec*, and E4SRec_8*
  has no counterpart (one model cannot play two rows);
- an offline SLMRec student with the book's distillation defaults and b = 4 blocks: (small <- mid)
  plays SLMRec_4<-8 with its loss terms (+D_norm, +L_ms); (mid <- depth) SLMRec_8<-32 and
  (small <- depth) SLMRec_4<-32, D_cos alone, where depth differs from mid (with depth = mid the
  student of the 8-layer teacher is the 4<-8 one). A row the paper's table does not hold maps to None.
`check_one_to_one(book)` asserts that no two models of the profile's studies play the same row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import config, paths
from ..models.slmrec import DistillConfig
from .context import GROUP_COLUMNS, Book, BookError

MAIN_METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")  # the paper's main-table metrics
SCAN_METRICS = ("HR@10", "NDCG@10", "MRR")  # the layer-scan figure's metrics
PAPER_DEPTH, PAPER_MID, PAPER_SMALL = 32, 8, 4  # the paper's E4SRec*, teacher and student depths
REFERENCE = "E4SRec*"  # the paper's average improvement is against this row


def paper(name: str) -> pd.DataFrame:
    """One of the paper's tables (paper/<name>.csv): main_table, efficiency, datasets, layer_scan_cloth."""
    path = paths.paper_dir() / f"{name}.csv"
    if not path.exists():
        known = sorted(p.stem for p in paths.paper_dir().glob("*.csv"))
        raise BookError(f"no paper table {name!r}; known: {', '.join(known)}")
    return pd.read_csv(path)


def paper_long() -> pd.DataFrame:
    """The paper's main table as rows (method, dataset, metric, value in percent)."""
    t = paper("main_table")
    return t.melt(id_vars=["method", "dataset"], value_vars=list(MAIN_METRICS), var_name="metric").dropna()


def paper_methods() -> list[str]:
    return list(paper("main_table").method.drop_duplicates())


def paper_dataset_checks() -> pd.DataFrame:
    """The paper's dataset table with what its own counts imply: a 5-core set has >= 5 ratings a user
    and an item, and the printed density should be ratings / (users x items) up to rounding."""
    t = paper("datasets")
    ratings, users, items = t["ratings"], t["users"], t["items"]
    t["ratings_per_user"] = ratings / users
    t["ratings_per_item"] = ratings / items
    t["density_pct_recomputed"] = 100 * ratings / (users * items)
    density_ok = (t.density_pct_recomputed - t.density_pct).abs() <= 0.0005 + 0.05 * t.density_pct
    t["consistent"] = (t.ratings_per_user >= 5) & (t.ratings_per_item >= 5) & density_ok
    return t


def _num(v):
    """A depth or weight from a column (None / nan / float / int) as a number or None."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
        return None
    return float(v)


def _flag(v) -> bool:
    """A boolean column read back from CSV (bool, "True"/"False", nan)."""
    if isinstance(v, str):
        return v.strip().lower() == "true"
    return bool(v) and v == v


def main_item_run(book: Book, dataset: str) -> str:
    """The hash of the SASRec run whose item table the profile's LLM runs read on `dataset`."""
    from .. import studies

    return studies.item_run(book.profile, dataset).hash


def paper_row(columns, book: Book) -> str | None:
    """The paper's main-table row a model plays; `columns` a RunConfig or its tidy columns (module doc)."""
    if isinstance(columns, config.RunConfig):
        columns = dict(config.columns(columns), dataset=columns.data.dataset)
    if not isinstance(columns, Mapping):
        columns = dict(columns)  # a pandas row
    c, prof = columns, book.profile
    kind, role = c["kind"], c.get("role") or ""
    if role:
        return None
    depth_of = {prof.small: PAPER_SMALL, prof.mid: PAPER_MID, prof.depth: PAPER_DEPTH}  # depth wins ties
    layers, teacher = _num(c.get("layers")), _num(c.get("teacher_layers"))
    if kind in ("gru4rec", "bert4rec", "sasrec"):
        if c.get("targets") != "all":
            return None
        if kind == "sasrec":
            base = prof.baseline_params.get("sasrec")
            if base is not None and (c.get("loss") != getattr(base, "loss", c.get("loss"))
                                     or str(c.get("negatives")) != str(getattr(base, "negatives", c.get("negatives")))):
                return None
        return config.DISPLAY[kind]
    if kind in config.LLM_KINDS:
        if c.get("backbone") != prof.backbone or _flag(c.get("train_item_table")):
            return None
        if kind != "p5" and c.get("item_run") != main_item_run(book, c.get("dataset") or book.dataset):
            return None  # an LLM reading another item table (a rung of the baseline ladder)
        if kind == "p5":
            return "Open-P5_LLaMa" if layers == prof.depth else None
        if c.get("targets") != prof.llm_targets:
            return None
    if kind == "e4srec":
        k = depth_of.get(layers)
        return None if k is None else REFERENCE if k == PAPER_DEPTH else f"E4SRec_{k}*"
    if kind != "slmrec":
        return None
    d = DistillConfig()
    if (c.get("mode") != "offline" or _num(c.get("blocks")) != d.blocks or _num(c.get("w_cos")) != d.w_cos
            or _flag(c.get("norm_squared")) != d.norm_squared):
        return None
    suffix = ("" if not _num(c.get("w_norm")) else " +D_norm") + ("" if not _num(c.get("w_ms")) else " +L_ms")
    if layers == prof.small and teacher == prof.mid:
        row = f"SLMRec_{PAPER_SMALL}<-{PAPER_MID}{suffix}"
    elif teacher == prof.depth and prof.depth != prof.mid and layers in (prof.mid, prof.small) and layers < teacher:
        row = f"SLMRec_{PAPER_MID if layers == prof.mid else PAPER_SMALL}<-{PAPER_DEPTH}{suffix}"
    else:
        return None
    return row if row in paper_methods() else None


def check_one_to_one(book: Book, cfgs: list) -> dict[str, str]:
    """paper row -> our label for `cfgs` (seeds of one model count once); BookError if two models of
    the list play the same row."""
    seen: dict[str, tuple] = {}
    out = {}
    for cfg in cfgs:
        cols = config.columns(cfg)
        key = tuple(str(cols.get(k)) for k in GROUP_COLUMNS if k != "dataset") + (cfg.data.dataset,)
        row = paper_row(cols, book)
        if row is None:
            continue
        if row in seen and seen[row][0] != key:
            raise BookError(f"two models play the paper's row {row!r}: {seen[row][1]} and {cfg.label}")
        seen[row] = (key, cfg.label)
        out[row] = cfg.label
    return out


def average_improvement(long: pd.DataFrame, reference: str, model_col: str = "model") -> pd.Series:
    """The paper's average improvement (percent) of every model over `reference`.

    `long`: rows with columns model_col, metric, value (and optionally dataset). For each (dataset,
    metric) the relative change against the reference's value there; averaged over all of them.
    """
    keys = ["dataset", "metric"] if "dataset" in long.columns else ["metric"]
    ref = long[long[model_col] == reference].set_index(keys)["value"]
    if ref.empty:
        raise BookError(f"reference {reference!r} is not among the models: {sorted(long[model_col].unique())}")
    joined = long.join(ref.rename("ref"), on=keys)
    rel = 100 * (joined["value"] / joined["ref"] - 1)
    return rel.groupby(joined[model_col], sort=False).mean()
