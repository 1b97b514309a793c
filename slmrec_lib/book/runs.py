"""The runs behind a notebook and how the book picks among them: by tidy columns, never by label.

`study_rows(book, name)` asks the runner for a study's runs (through the Book's Profile object) and
returns their rows with the columns of the config each was asked for (`config.columns`: kind, role,
layers, teacher_layers, variant weights, blocks, mode, ...). A *group* is one model: the runs of every
seed of one setting (same `GROUP_COLUMNS`); its display name is the label of its rows, for display only.
A `Side` names a model by its columns and the profile's depth roles ("depth", "mid", "small"), so
tables and claims find "the 4-layer student of the 8-layer teacher with D_norm on" whatever it is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .. import config, experiment, studies
from ..models.slmrec import DistillConfig
from .context import Book, BookError
from .context import GROUP_COLUMNS
from .paper import _flag, main_item_run

# the columns that make one model (every seed of one setting); teacher_run differs by seed
# book columns a result row gets from the config that asked for it (rows made by hand may lack them: False)
BOOK_COLUMNS = ("control",)
TEXT_COLUMNS = ("role", "backbone", "targets", "loss", "negatives", "mode", "item_run", "teacher_run", "label")
STUDY_NAMES = ("layer_scan", "main_table", "ablation", "online_kd", "block_count")
EXTRA_STUDIES = ("baselines", "depth_controls")  # notebooks 08 and 09
RUNG_NAMES = {"ce": "cross-entropy, every position a target (ours)",
              "bce": "BCE, one sampled negative a position (Kang & McAuley)",
              "authors": "the authors' script: cross-entropy on the last target"}


def is_control(cfg) -> bool:
    """A run of the depth controls: scored also on shuffled histories (and, for the LLMs, in fp32). It
    is a model of its own: its scores are not those of the run of the same setting in the other studies."""
    return any(getattr(p, "shuffle", False) for p in cfg.protocols) or bool(getattr(cfg.model.params, "score_fp32",
                                                                                     False))


def book_columns(cfg) -> dict:
    """The book's columns of a config beside `config.columns`."""
    return dict(control=is_control(cfg))


def rung_of(columns) -> str:
    """The ladder rung of a SASRec from its tidy columns: "bce" (BCE loss), "authors" (last target
    only, cross-entropy) or "ce" (cross-entropy, every position a target)."""
    if str(columns["loss"]) == "bce":
        return "bce"
    return "authors" if str(columns["targets"]) == "last" else "ce"


# ------------------------------------------------------------------------------------------ runs
def study_configs(book: Book, name: str, with_p5: bool = True) -> list:
    """The RunConfigs of one study of the book's profile (the Profile object, not its name)."""
    if name == "main_table":
        return studies.main_table(book.profile, book.dataset, with_p5=with_p5)
    return studies.study(name, book.profile, book.dataset)


def rows_of(cfgs: list, book: Book) -> pd.DataFrame:
    """Run (or read back) every config and return the rows, each with the tidy columns of the config
    that asked for it (a run shared by two roles, the cpu profile's SASRec and its item table, carries
    the asking config's role). `rows.attrs["missing"]`: the runs a GPU profile lacks on this machine."""
    unique = list({(c.hash, c.role): c for c in cfgs}.values())
    got = experiment.run_all(unique, book.profile)
    missing = got.attrs.get("missing", [])
    if len(got):
        # a hash of digits only ("703940878734") comes back from rows.csv as a number: take it from the run
        # id ("<profile>-<hash>"), always text
        got = got.assign(config_hash=got.run_id.astype(str).str.rsplit("-", n=1).str[-1])
    frames = []
    for cfg in unique:
        part = got[got.config_hash == cfg.hash].drop_duplicates(["protocol", "stage", "metric"]) if len(got) else got
        if len(part):
            frames.append(part.assign(**config.columns(cfg), **book_columns(cfg), model=cfg.label))
    out = normalized(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()
    out.attrs["missing"] = missing
    return out


def study_rows(book: Book, name: str, with_p5: bool = True) -> pd.DataFrame:
    """The rows of one study (`STUDY_NAMES`)."""
    return rows_of(study_configs(book, name, with_p5), book)


def run_studies(book: Book, names=STUDY_NAMES, with_p5: bool = True) -> pd.DataFrame:
    """The rows of several studies (each run once, however many studies share it)."""
    cfgs = [c for name in names for c in study_configs(book, name, with_p5)]
    return rows_of(cfgs, book)


def load_ranks(cfg, book: Book):
    """A finished run's per-user ranks (`experiment.load_ranks`), None for a run that predates them."""
    return experiment.load_ranks(cfg, book.profile)


def normalized(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows read from CSV with text columns as strings ("" for none) and a `group` key column."""
    rows = rows.copy()
    for col in BOOK_COLUMNS:
        rows[col] = rows[col].map(_flag).astype(bool) if col in rows.columns else False
    for col in TEXT_COLUMNS:
        if col in rows.columns:
            rows[col] = rows[col].fillna("").astype(str)
    missing = [c for c in GROUP_COLUMNS if c not in rows.columns]
    if missing:
        raise BookError(f"result rows lack the tidy columns {missing}: they predate typed configs; run "
                        "`python -m slmrec_lib.migrate` on their results folder")
    rows["group"] = [_key(v) for v in zip(*(rows[c] for c in GROUP_COLUMNS))]
    return rows


def _key(values) -> str:
    def one(v):
        if v is None or v is pd.NA:
            return ""
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (int, float, np.integer, np.floating)):
            v = float(v)
            return "" if math.isnan(v) else (str(int(v)) if v.is_integer() else repr(v))
        return str(v)

    return "|".join(one(v) for v in values)


def groups(rows: pd.DataFrame) -> pd.DataFrame:
    """One row a model (group), in the order the rows first show it: its columns, display `name`
    (the label; a depth-control run sharing its label with another run is "<label> (depth control)",
    and any other two settings sharing a label are told apart by the run hash) and seed count."""
    if "group" not in rows.columns:
        rows = normalized(rows)
    first = rows.drop_duplicates("group").set_index("group")
    out = first[list(GROUP_COLUMNS) + ["model"]].rename(columns={"model": "name"})
    control = out["control"].astype(bool)
    dup = out.name.duplicated(keep=False)
    out.loc[dup & control, "name"] = out.name[dup & control] + " (depth control)"  # fp32, shuffled histories too
    dup = out.name.duplicated(keep=False)
    out.loc[dup, "name"] = [f"{n} [{h}]" for n, h in zip(out.name[dup], first.config_hash[dup])]
    out["seeds"] = rows.groupby("group").seed.nunique().reindex(out.index)
    return out


def names(rows: pd.DataFrame) -> pd.Series:
    """group -> display name."""
    return groups(rows)["name"]


# ------------------------------------------------------------------------------------------ sides
ON, OFF = "on", "off"  # a loss weight above 0, or 0


@dataclass(frozen=True)
class Side:
    """A model named by its columns. Depths are roles ("depth", "mid", "small") or numbers; a weight
    is ON, OFF or None (either). LLM sides also require, unless told otherwise, the profile's own
    backbone (`backbone="random"`: its random-weight twin), training rows (`targets`), the frozen item
    table of the profile (`item_table`: "main", or a ladder rung whose 128-wide table it reads), and
    for students the book's other distillation defaults. `control`: a run of the depth controls (fp32
    scores, also scored on shuffled histories) or not. `rung`: a SASRec of one ladder rung (None: any)."""

    kind: str
    layers: str | int | None = None
    teacher_layers: str | int | None = None
    w_norm: str | None = None
    w_ms: str | None = None
    mode: str | None = None  # "offline" | "online" | None (either)
    blocks: int | None = None
    role: str = ""  # "" for the models of the studies, "item table" for the table of the LLM runs
    backbone: str | None = None  # None: the profile's; "random": its random-weight twin
    targets: str | None = None  # LLM training rows; None: the profile's
    train_item_table: bool = False
    item_table: str = "main"  # "main" or a rung of the ladder (studies.RUNGS)
    control: bool = False
    rung: str | None = None  # SASRec only

    def mask(self, table: pd.DataFrame, book: Book) -> pd.Series:
        """Which rows of a frame with the tidy columns (rows or `groups`) this side names."""
        t = table
        ok = (t.kind == self.kind) & (t.role.fillna("") == self.role)
        control = t["control"].map(_flag).astype(bool) if "control" in t.columns else pd.Series(False, t.index)
        ok &= control == self.control
        for col in ("layers", "teacher_layers"):
            want = book.depth(getattr(self, col))
            if want is not None:
                ok &= t[col] == want
        for col in ("w_norm", "w_ms"):
            want = getattr(self, col)
            if want is not None:
                ok &= (t[col] > 0) if want == ON else (t[col] == 0)
        if self.mode is not None:
            ok &= t["mode"] == self.mode
        if self.blocks is not None:
            ok &= t["blocks"] == self.blocks
        if self.kind == "sasrec" and self.rung is not None:
            ok &= pd.Series([rung_of(r) == self.rung for _, r in t.iterrows()], index=t.index, dtype=bool)
        if self.kind in config.LLM_KINDS:
            backbone = studies.random_backbone(book.backbone) if self.backbone == "random" else \
                (self.backbone or book.backbone)
            ok &= (t.backbone == backbone) & (t.train_item_table.map(_flag).astype(bool) == self.train_item_table)
            if self.kind != "p5":
                tables = {d: item_table_run(book, d, self.item_table) for d in set(t.dataset)}
                ok &= (t.targets == (self.targets or book.profile.llm_targets)) & (t.item_run == t.dataset.map(tables))
        if self.kind == "slmrec":
            d = DistillConfig()
            ok &= (t.w_cos == d.w_cos) & (t.norm_squared.map(_flag) == d.norm_squared)
        return ok

    def find(self, rows: pd.DataFrame, book: Book) -> list[str]:
        """The groups of `rows` this side names (a SASRec side may name several: a ladder of baselines)."""
        g = groups(rows)
        return list(g.index[self.mask(g, book)])


def item_table_run(book: Book, dataset: str, table: str = "main") -> str:
    """The hash of the item-table run an LLM reads: "main" (the profile's) or a ladder rung's 128-wide
    SASRec (`studies.baselines` reads the BCE rung's)."""
    if table == "main":
        return main_item_run(book, dataset)
    if table not in studies.RUNGS:
        raise BookError(f"unknown item table {table!r}: use 'main' or a rung of {studies.RUNGS}")
    prof = book.profile
    cfg = studies.sasrec_rung(prof, dataset, table, prof.seeds[0], width=prof.item_table_params.hidden)
    return replace(cfg, role="item table").hash


def one(side: Side, rows: pd.DataFrame, book: Book, what: str = "") -> str | None:
    """The one group a side names, None if none; several is an error naming them."""
    found = side.find(rows, book)
    if len(found) > 1:
        shown = ", ".join(names(rows)[found])
        raise BookError(f"{what or side} names {len(found)} models ({shown}): make the side more specific")
    return found[0] if found else None


# ------------------------------------------------------------------------------------------ protocols
def is_shuffled(name: str) -> bool:
    """A protocol scored on shuffled histories (the order control), e.g. "sampled-999-seed0-shuffled"."""
    return "shuffled" in str(name).split("-")


def protocols(rows: pd.DataFrame, shuffled: bool = False) -> list[str]:
    """The protocols of the rows, the sampled one (the paper's) first, then full ranking; the ones on
    shuffled histories (the depth controls' order test) only if `shuffled`, each after its plain one."""
    present = sorted(rows.protocol.unique(), key=lambda p: (not str(p).startswith("sampled"), str(p)))
    return [p for p in present if str(p).startswith(("sampled", "full")) and (shuffled or not is_shuffled(p))]


def plain_of(name: str) -> str:
    """"sampled-999-seed0-shuffled" -> "sampled-999-seed0", "full-shuffled" -> "full"."""
    return "-".join(p for p in str(name).split("-") if p != "shuffled")


def shuffled_of(name: str, rows: pd.DataFrame) -> str | None:
    """The shuffled twin of a plain protocol among the rows' protocols, or None."""
    twins = [p for p in rows.protocol.unique() if is_shuffled(p) and plain_of(p) == name]
    return twins[0] if twins else None


def sampled_protocol(rows: pd.DataFrame) -> str:
    """The name of the sampled protocol in the rows (the paper's protocol)."""
    names_ = [p for p in protocols(rows) if str(p).startswith("sampled")]
    if not names_:
        raise BookError(f"no sampled-protocol rows; protocols present: {sorted(rows.protocol.unique())}")
    return names_[0]


def protocol_kind(name: str) -> str:
    """"sampled-999-seed0" -> "sampled 1+999", "full" -> "full ranking"."""
    parts = str(name).split("-")
    kind = f"sampled 1+{parts[1]}" if parts[0] == "sampled" and len(parts) > 1 else "full ranking" \
        if parts[0] == "full" else str(name)
    return kind + ", shuffled histories" if is_shuffled(name) else kind


def select(rows: pd.DataFrame, metrics, stage: str = "test", protocol: str | None = None) -> pd.DataFrame:
    """Rows of one stage and protocol (default: the sampled one) and the given metrics."""
    protocol = protocol or sampled_protocol(rows)
    if "group" not in rows.columns:
        rows = normalized(rows)
    return rows[(rows.stage == stage) & (rows.protocol == protocol) & rows.metric.isin(metrics)]


def seeds_text(rows: pd.DataFrame) -> str:
    """"3 seeds" or "1 seed" (the most any model has) for captions."""
    n = int(rows.groupby("group").seed.nunique().max()) if len(rows) else 0
    return f"{n} seed{'s' if n != 1 else ''}"


def users_text(rows: pd.DataFrame) -> str:
    """How many test users the models were scored on, e.g. "500 test users (P5_8: 10)"."""
    g = groups(rows)
    users = rows.groupby("group").n_users.max()
    main = int(users.max()) if len(users) else 0
    few = [f"{g.name[k]}: {int(v)}" for k, v in users.items() if v < main]
    return f"{main} test users" + (f" ({', '.join(few)})" if few else "")


def few_users(rows: pd.DataFrame, share: float = 0.2) -> list[str]:
    """Display names of the models scored on fewer than `share` of the most users (P5 on a subset)."""
    users = rows.groupby("group").n_users.max()
    g = groups(rows)
    return [g.name[k] for k, v in users.items() if v < share * users.max()]


def per_seed(rows: pd.DataFrame, group: str, protocol: str, metric: str) -> np.ndarray:
    """One model's per-seed values of one test metric."""
    r = rows[(rows.group == group) & (rows.protocol == protocol) & (rows.stage == "test") & (rows.metric == metric)]
    return r.sort_values("seed")["value"].to_numpy(dtype=float)


# the models the book's tables and claims name (the paper's names at the profile's depths)
DEEP = Side("e4srec", "depth")  # the paper's E4SRec*: our deepest E4SRec
E4_MID = Side("e4srec", "mid")
E4_SMALL = Side("e4srec", "small")
STUDENT = Side("slmrec", "small", "mid", OFF, OFF, "offline", 4)  # SLMRec_4<-8, D_cos alone
STUDENT_NORM = Side("slmrec", "small", "mid", ON, OFF, "offline", 4)
STUDENT_MS = Side("slmrec", "small", "mid", OFF, ON, "offline", 4)
FULL = Side("slmrec", "small", "mid", ON, ON, "offline", 4)  # D_cos + D_norm + L_ms, the paper's best
FULL_ONLINE = Side("slmrec", "small", "mid", ON, ON, "online", 4)
BLOCKS_1 = Side("slmrec", "small", "mid", ON, None, "offline", 1)  # b = 1 has no L_ms (needs b >= 2)
BLOCKS_2 = Side("slmrec", "small", "mid", ON, ON, "offline", 2)
SASREC = Side("sasrec")  # every SASRec of the studies (a ladder of trainings gives several)
P5 = Side("p5", "depth")


# ------------------------------------------------------------------------------------------ timing
def timing_rows(book: Book, measure: bool = False, force: bool = False) -> pd.DataFrame:
    """The timing benchmark's rows of the book's dataset (results/<profile>/timing.csv); `measure`:
    measure them if missing (`force`: again). A GPU profile on a machine without one gets the saved rows
    or, with none saved, an empty frame and a printed note (its speed verdicts are then 'not measured')."""
    from .. import timing

    if not measure:
        return timing.load(book.name, book.dataset)
    try:
        return timing.load_or_measure(book.name, book.dataset, force=force)
    except experiment.MissingResult as exc:
        print(f"not measured: {exc}\nThe speed verdicts below are 'not measured' (a GPU profile's runs shared devices).")
        return timing.load(book.name, book.dataset)


def timing_summary(timed: pd.DataFrame) -> pd.DataFrame:
    """Median ms per model and measure, and the speed-ups against the deepest E4SRec."""
    from .. import timing

    return timing.summary(timed)

BLOCKS_NOTE = ("b = 1 is '+D_norm' only: L_ms needs an intermediate block end for its extra heads, and one block "
               "has none; b = 2 and 4 carry D_cos + D_norm + L_ms")
