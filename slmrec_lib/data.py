"""Datasets for sequential recommendation: download or local files, filtering, k-core, time order,
re-indexing, leave-one-out split and the tensors models train on.

The paper (SLMRec, Xu et al., ICLR 2025, Sec. 5.1) uses Amazon 2018 categories: ratings above 3 kept,
5-core on users and items, each user's items in time order, leave-one-out (last item test, second to
last validation). Its public code departs from this; `Preprocess.official_code()` reproduces those
departures so their effect can be measured:
  NOTE: the code keeps rating >= 3 (not > 3), filters users >= 5 then items >= 20 then users >= 5
  once each (not an iterative k-core), and keeps each user's items in file order, which is product-id
  order, not time order.

Every dataset ends as `SequenceData`: one int64 array a user, item ids 1..n_items, oldest first, with
id 0 reserved for padding.

Before planning runs: `check_dataset(name)` raises a DataError for a name or file that cannot be loaded,
and `fingerprint(name)` is a sha256 of the dataset's content for a run's hash (file digests are cached
by path, size and mtime_ns). `truncation_summary` counts what `max_len` cuts off; `shuffle_inputs`
serves the shuffled-history evaluation; `sample_negatives` draws the fixed sampled candidates.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import inspect
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import paths
from .util import atomic_write_text, seeded_subset, sha256_file


class DataError(ValueError):
    """A dataset cannot be used as asked; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------------
# containers


@dataclass
class SequenceData:
    name: str  # dataset name, e.g. "beauty" or "amazon2018:CDs_and_Vinyl"
    sequences: list[np.ndarray]  # one int64 array a user, item ids in 1..n_items, oldest first
    n_items: int  # number of items; ids run 1..n_items, 0 is padding
    titles: list[str] | None = None  # length n_items + 1 (index 0 unused), or None
    info: dict = field(default_factory=dict)  # source file, preprocessing, raw ids

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))


@dataclass
class Split:
    """Leave-one-out: train = seq[:-2]; validation predicts seq[-2] from seq[:-2]; test seq[-1] from seq[:-1]."""

    data: SequenceData
    _negatives: dict = field(default_factory=dict, repr=False)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def train(self) -> list[np.ndarray]:
        return [s[:-2] for s in self.data.sequences]

    def stage(self, stage: str) -> tuple[list[np.ndarray], np.ndarray]:
        """(inputs, targets) of a stage: "valid" or "test"."""
        if stage == "valid":
            return [s[:-2] for s in self.data.sequences], np.array([s[-2] for s in self.data.sequences])
        if stage == "test":
            return [s[:-1] for s in self.data.sequences], np.array([s[-1] for s in self.data.sequences])
        raise ValueError(f"unknown stage {stage!r}: use 'valid' or 'test'")

    def negatives(self, n: int, seed: int) -> np.ndarray:
        """The fixed sampled negatives of every user for (n, seed); drawn once, then reused."""
        key = (n, seed)
        if key not in self._negatives:
            self._negatives[key] = sample_negatives(self.data.sequences, self.n_items, n, seed)
        return self._negatives[key]


def sample_negatives(sequences: list[np.ndarray], n_items: int, n: int, seed: int) -> np.ndarray:
    """[U, n] distinct item ids per user, none of them in the user's sequence; seeded.

    Each user's negatives are the n smallest of uniform random keys over the items, with the user's
    own items given an infinite key: uniform sampling without replacement, in vectorised chunks.
    The evaluator re-exports it; it lives here so that `Split` needs nothing from the evaluator.
    """
    lengths = np.array([len(s) for s in sequences])
    if (n_items - lengths < n).any():
        u = int(np.argmax(n_items - lengths < n))
        raise ValueError(
            f"user index {u} has only {n_items - lengths[u]} items it never interacted with, fewer than the "
            f"{n} negatives asked for; use fewer negatives or full ranking"
        )
    rng = np.random.default_rng(seed)
    out = np.empty((len(sequences), n), dtype=np.int64)
    chunk = max(1, int(2e7 // (n_items + 1)))
    for start in range(0, len(sequences), chunk):
        block = sequences[start : start + chunk]
        keys = rng.random((len(block), n_items + 1), dtype=np.float32)
        keys[:, 0] = np.inf  # padding id
        rows = np.repeat(np.arange(len(block)), [len(s) for s in block])
        keys[rows, np.concatenate(block)] = np.inf
        picked = np.argpartition(keys, n - 1, axis=1)[:, :n]
        out[start : start + len(block)] = np.sort(picked, axis=1)
    return out


def leave_one_out(data: SequenceData) -> Split:
    short = [u for u, s in enumerate(data.sequences) if len(s) < 3]
    if short:
        raise DataError(
            f"{data.name}: {len(short)} users have fewer than 3 items (first: user index {short[0]}); "
            "leave-one-out needs at least one training, one validation and one test item. "
            "Filter with a k-core of k >= 3."
        )
    return Split(data)


# --------------------------------------------------------------------------------------------------
# preprocessing of raw (user, item, rating, time) rows


@dataclass
class Preprocess:
    min_rating: float | None = 3.0  # drop ratings at or below this (None keeps every rating)
    rating_strict: bool = True  # True keeps rating > min_rating (the paper); False keeps >= (the code)
    user_k: int = 5  # users need at least this many interactions
    item_k: int = 5  # items need at least this many interactions
    iterative: bool = True  # repeat the filters until stable (k-core); False: users, items, users once
    order: str = "time"  # "time": oldest first, ties by file order; "item_id": by raw item id (the code)
    dedupe: bool = True  # drop repeated (user, item) pairs, keeping the earliest
    max_items_per_user: int | None = None  # keep only the most recent items of a user (None: all)

    @classmethod
    def paper(cls) -> "Preprocess":
        return cls()

    @classmethod
    def official_code(cls) -> "Preprocess":
        """The authors' public code: rating >= 3, users >= 5, items >= 20, one pass, product-id order."""
        return cls(min_rating=3.0, rating_strict=False, user_k=5, item_k=20, iterative=False, order="item_id")


def _filter_counts(users: np.ndarray, items: np.ndarray, keep: np.ndarray, by: np.ndarray, k: int) -> np.ndarray:
    ids, inverse = np.unique(by[keep], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(ids))
    ok_ids = ids[counts >= k]
    return keep & np.isin(by, ok_ids)


def preprocess_interactions(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, times: np.ndarray, cfg: Preprocess, name: str
) -> SequenceData:
    """Raw rows (one interaction each, in file order) -> SequenceData, as `cfg` says."""
    if cfg.order not in ("time", "item_id"):
        raise DataError(f"unknown order {cfg.order!r}: use 'time' or 'item_id'")
    n_raw = len(users)
    keep = np.ones(n_raw, dtype=bool)
    if cfg.min_rating is not None:
        keep &= ratings > cfg.min_rating if cfg.rating_strict else ratings >= cfg.min_rating
    # time order with a stable tie-break (file order), then repeated (user, item) pairs keep the earliest
    order = np.lexsort((np.arange(n_raw), times))
    users, items, ratings, times, keep = users[order], items[order], ratings[order], times[order], keep[order]
    if cfg.dedupe:
        idx = np.flatnonzero(keep)
        pair = np.char.add(np.char.add(users[idx].astype(str), "\x00"), items[idx].astype(str))
        _, first = np.unique(pair, return_index=True)
        dedup = np.zeros(n_raw, dtype=bool)
        dedup[idx[first]] = True
        keep &= dedup
    if cfg.iterative:
        while True:
            before = keep.sum()
            keep = _filter_counts(users, items, keep, users, cfg.user_k)
            keep = _filter_counts(users, items, keep, items, cfg.item_k)
            if keep.sum() == before:
                break
    else:
        keep = _filter_counts(users, items, keep, users, cfg.user_k)
        keep = _filter_counts(users, items, keep, items, cfg.item_k)
        keep = _filter_counts(users, items, keep, users, cfg.user_k)
    if not keep.any():
        raise DataError(
            f"{name}: no interactions left after filtering (rating {'>' if cfg.rating_strict else '>='} "
            f"{cfg.min_rating}, users >= {cfg.user_k}, items >= {cfg.item_k}). The data is too sparse for "
            "this k-core: lower user_k/item_k, or use the full category file instead of a sample."
        )
    users, items, times = users[keep], items[keep], times[keep]
    item_ids = np.unique(items)  # re-index items 1..N in sorted raw-id order
    item_index = np.searchsorted(item_ids, items) + 1
    user_ids, user_index = np.unique(users, return_inverse=True)
    # group by user; within a user keep the time order already in place (stable sort on user)
    if cfg.order == "time":
        by_user = np.argsort(user_index, kind="stable")
    else:  # NOTE: the authors' code keeps file order, which is product-id order
        by_user = np.lexsort((items, user_index))
    bounds = np.cumsum(np.bincount(user_index, minlength=len(user_ids)))[:-1]
    seqs = [s.astype(np.int64) for s in np.split(item_index[by_user], bounds)]
    if cfg.max_items_per_user:
        seqs = [s[-cfg.max_items_per_user :] for s in seqs]
    return SequenceData(
        name=name,
        sequences=seqs,
        n_items=len(item_ids),
        info={"preprocess": asdict(cfg), "raw_rows": n_raw, "user_ids": user_ids, "item_ids": item_ids},
    )


# --------------------------------------------------------------------------------------------------
# file readers


_ASIN_LEN = 10  # Amazon product ids: 10 letters or digits (e.g. B000002MHJ; books: an ISBN-10)
_UNIX_1990, _UNIX_2030 = 631_152_000, 1_893_456_000  # plausible interaction times, unix seconds
_COLUMNS = {0: "1 (item)", 1: "2 (user)", 2: "3 (rating)", 3: "4 (timestamp)"}


def _asin_like(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(str)
    return (np.char.str_len(ids) == _ASIN_LEN) & np.char.isalnum(ids)


def _check_ratings_layout(
    path: Path, items: np.ndarray, users: np.ndarray, ratings: np.ndarray, times: np.ndarray, amazon: bool
) -> np.ndarray:
    """Raise DataError naming the column that looks wrong; returns the times in unix seconds.

    Checks: ratings in [0, 5], mostly whole or half stars; timestamps unix seconds between 1990 and 2030
    (a column that lies wholly in that range in milliseconds, as in the Amazon 2023 files, is accepted
    and divided by 1000); item ids ASIN-like where the layout is Amazon's (`amazon=True`, or the user
    column is ASIN-like and the item column is not); user ids not mostly the same ids as the items.
    """
    layout = "The layout is item,user,rating,timestamp, no header (Amazon 2018 ratings-only files)."
    bad = np.flatnonzero(~((ratings >= 0) & (ratings <= 5)))
    if len(bad):
        row, value = int(bad[0]) + 1, ratings[bad[0]]
        swapped = " It looks like a unix time: rating and timestamp look swapped." if value > _UNIX_1990 / 10 else ""
        raise DataError(
            f"{path}:{row}: column {_COLUMNS[2]} holds {value:g}, but ratings must be numbers in [0, 5] "
            f"({len(bad)} of {len(ratings)} rows are outside).{swapped} {layout}"
        )
    halves = float(np.mean(ratings * 2 == np.round(ratings * 2)))
    if halves < 0.9:
        raise DataError(
            f"{path}: column {_COLUMNS[2]}: only {100 * halves:.0f}% of ratings are whole or half stars; "
            f"that column does not look like star ratings. {layout}"
        )
    if len(times) and ((times >= _UNIX_1990 * 1000) & (times <= _UNIX_2030 * 1000)).all():
        times = times // 1000  # milliseconds
    bad = np.flatnonzero(~((times >= _UNIX_1990) & (times <= _UNIX_2030)))
    if len(bad):
        row, value = int(bad[0]) + 1, times[bad[0]]
        swapped = " It looks like a rating: rating and timestamp look swapped." if 0 <= value <= 5 else ""
        raise DataError(
            f"{path}:{row}: column {_COLUMNS[3]} holds {value}, not a unix time between 1990 and 2030 in seconds "
            f"(or, for the whole column, milliseconds); {len(bad)} of {len(times)} rows are outside.{swapped} "
            f"{layout}"
        )
    item_asin, user_asin = float(_asin_like(items).mean()), float(_asin_like(users).mean())
    if (amazon and item_asin < 0.9) or (user_asin >= 0.9 and item_asin < 0.5):
        swapped = (
            f" Column {_COLUMNS[1]} does ({100 * user_asin:.0f}%): item and user look swapped."
            if user_asin >= 0.9 else ""
        )
        raise DataError(
            f"{path}: column {_COLUMNS[0]} should hold ASINs ({_ASIN_LEN} letters or digits, e.g. B000002MHJ), "
            f"but only {100 * item_asin:.0f}% of its values are ASIN-like (first: {items[0]!r}).{swapped} {layout}"
        )
    distinct_users = np.unique(users)
    shared = float(np.isin(distinct_users, np.unique(items)).mean())
    if shared > 0.5:
        raise DataError(
            f"{path}: {100 * shared:.0f}% of the ids in column {_COLUMNS[1]} also occur in column {_COLUMNS[0]}; "
            f"users and items should be different kinds of id. {layout}"
        )
    return times


def read_ratings_csv(
    path: Path, amazon: bool = False, max_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Amazon 2018 ratings-only layout: no header, `item,user,rating,timestamp` -> (users, items,
    ratings, times in unix seconds), in file order. The layout is checked (see `_check_ratings_layout`);
    `amazon=True` requires ASIN item ids. `max_rows` reads only the first rows (a quick check)."""
    items, users, ratings, times = [], [], [], []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if max_rows is not None and lineno > max_rows:
                break
            if len(row) != 4:
                raise DataError(
                    f"{path}:{lineno}: expected 4 comma-separated fields item,user,rating,timestamp, "
                    f"got {len(row)}: {row[:6]!r}"
                )
            try:
                ratings.append(float(row[2]))
                times.append(int(float(row[3])))
            except ValueError:
                header = " The file must have no header line." if lineno == 1 else ""
                raise DataError(
                    f"{path}:{lineno}: rating and timestamp (columns 3 and 4) must be numbers, got "
                    f"{row[2]!r}, {row[3]!r}.{header}"
                ) from None
            items.append(row[0])
            users.append(row[1])
    if not items:
        raise DataError(f"{path}: the file is empty")
    users_a, items_a, ratings_a = np.array(users), np.array(items), np.array(ratings)
    times_a = _check_ratings_layout(path, items_a, users_a, ratings_a, np.array(times, dtype=np.int64), amazon)
    return users_a, items_a, ratings_a, times_a


def read_sequence_file(path: Path, one_based: bool = True, max_lines: int | None = None) -> list[np.ndarray]:
    """One user a line: `user_id item_id item_id ...`, oldest first; ids become 1-based.
    `max_lines` reads only the first lines (a quick check)."""
    seqs = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if max_lines is not None and lineno > max_lines:
                break
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: a line needs a user id and at least one item id")
            try:
                ids = np.array([int(p) for p in parts[1:]], dtype=np.int64)
            except ValueError:
                raise DataError(f"{path}:{lineno}: item ids must be integers, got {line.strip()[:80]!r}") from None
            ids = ids if one_based else ids + 1
            if (ids < 1).any():
                raise DataError(f"{path}:{lineno}: item ids must be >= {1 if one_based else 0}")
            seqs.append(ids)
    if not seqs:
        raise DataError(f"{path}: the file holds no sequences")
    return seqs


def read_titles(path: Path, n_items: int) -> list[str]:
    """`item_id:token<TAB>title:token_seq` with 0-based ids -> titles indexed by 1-based id."""
    titles = [""] * (n_items + 1)
    with open(path) as fh:
        header = fh.readline()
        if not header.startswith("item_id"):
            raise DataError(f"{path}:1: expected the header 'item_id:token<TAB>title:token_seq'")
        for lineno, line in enumerate(fh, start=2):
            item, sep, title = line.rstrip("\n").partition("\t")
            if not sep or not item.isdigit():
                raise DataError(f"{path}:{lineno}: expected '<item id><TAB><title>'")
            idx = int(item) + 1
            if idx > n_items:
                raise DataError(f"{path}:{lineno}: item id {item} is beyond the {n_items} items of the sequences")
            titles[idx] = html.unescape(title)
    return titles


# --------------------------------------------------------------------------------------------------
# the dataset hub: name -> where it lives and where to download it


@dataclass(frozen=True)
class Source:
    files: tuple[str, ...]  # paths under the data directory
    urls: tuple[str | None, ...]  # where to download each (None: no public direct download)
    sha256: tuple[str | None, ...]  # checked before a cached or downloaded file is used (None: unknown)
    kind: str  # "sequences" | "sequences0" (0-based ids, with titles) | "ratings"
    note: str = ""


_S3REC = "https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/master/data/"
_AMAZON2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/"
PAPER_CATEGORIES = ("Clothing_Shoes_and_Jewelry", "Movies_and_TV", "CDs_and_Vinyl", "Sports_and_Outdoors")

DATASETS: dict[str, Source] = {
    "beauty": Source(
        ("amazon2014/Beauty.txt",), (_S3REC + "Beauty.txt",),
        ("226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",), "sequences",
        "Amazon 2014 Beauty, 5-core, time order (S3-Rec / ICLRec preprocessing)",
    ),
    "sports": Source(
        ("amazon2014/Sports_and_Outdoors.txt",), (_S3REC + "Sports_and_Outdoors.txt",),
        ("2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",), "sequences",
        "Amazon 2014 Sports and Outdoors, 5-core, time order (S3-Rec / ICLRec preprocessing)",
    ),
    "toys": Source(
        ("amazon2014/Toys_and_Games.txt",), (_S3REC + "Toys_and_Games.txt",), (None,), "sequences",
        "Amazon 2014 Toys and Games, 5-core, time order (S3-Rec / ICLRec preprocessing)",
    ),
    "games": Source(
        ("amazon2018/Video_Games/Games.seq.txt", "amazon2018/Video_Games/Games.item"), (None, None), (None, None),
        "sequences0",
        "Amazon 2018 Video_Games with titles, 5-core, time order, at most 50 items a user (LLMRank's files)",
    ),
}


def known_datasets() -> list[str]:
    return sorted(DATASETS) + [f"amazon2018:{c}" for c in PAPER_CATEGORIES] + ["synthetic", "<path to a file>"]


def _source(name: str) -> Source:
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith("amazon2018:"):
        category = name.split(":", 1)[1]
        if not category or "/" in category:
            raise DataError(f"bad Amazon 2018 category in {name!r}; e.g. amazon2018:CDs_and_Vinyl")
        return Source(
            (f"amazon2018/{category}/{category}.csv",), (_AMAZON2018 + f"{category}.csv",), (None,), "ratings",
            f"Amazon 2018 {category}, ratings-only file",
        )
    raise DataError(f"unknown dataset {name!r}. Known datasets: {', '.join(known_datasets())}")


# --------------------------------------------------------------------------------------------------
# file digests, cached by (resolved path, size, mtime_ns) so that a large file is hashed once

_DIGEST_CACHE = "data_fingerprints.json"  # under paths.cache_dir()


def _digest_cache_path() -> Path:
    return paths.cache_dir() / _DIGEST_CACHE


def _read_digest_cache() -> dict:
    path = _digest_cache_path()
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):  # unreadable or damaged: start over, the digests are recomputed
        return {}
    return entries if isinstance(entries, dict) else {}


def file_sha256(path: Path) -> str:
    """sha256 hex of a file. A digest is kept in a small JSON under `paths.cache_dir()` keyed by the
    resolved path, and reused while the file's size and mtime_ns are unchanged; an edited file (new
    size or modification time) is read and hashed again."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    entries = _read_digest_cache()
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return str(entry["sha256"])
    digest = sha256_file(path)
    entries = _read_digest_cache()  # re-read: another process may have added entries meanwhile
    entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        atomic_write_text(json.dumps(entries, indent=1, sort_keys=True), _digest_cache_path())
    except OSError:  # a read-only cache folder: the digest is still right, only not kept
        pass
    return digest


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)  # a half-written download never takes the file's name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(name: str, data_dir: Path | None = None, download: bool = True) -> list[Path]:
    """Paths of a named dataset's files, downloading what is missing where a network exists. A file with
    a published sha256 is checked against it (through the digest cache of `file_sha256`)."""
    src = _source(name)
    root = Path(data_dir) if data_dir else paths.data_dir()
    out = []
    for rel, url, sha in zip(src.files, src.urls, src.sha256):
        path = root / rel
        where = f"Place the file at {path}, or set SLMREC_DATA_DIR to a folder holding {rel}."
        if path.is_dir():
            raise DataError(f"{name}: {path} is a directory, not the dataset's file. {where}")
        if not path.exists():
            if url is None:
                raise DataError(f"{name}: {path} is missing and has no public direct download. {where}")
            if not download:
                raise DataError(f"{name}: {path} is missing and downloads are off. {where}")
            try:
                _download(url, path)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(
                    f"{name}: {path} is missing and downloading {url} failed ({exc}). Without a network: "
                    f"download the file elsewhere and {where[0].lower() + where[1:]}"
                ) from exc
        if sha is not None and file_sha256(path) != sha:
            raise DataError(
                f"{name}: {path} does not match its published sha256 {sha}; the file is damaged or a different "
                "version. Delete it to download it again, or load it by path to use it as it is."
            )
        out.append(path)
    return out


# --------------------------------------------------------------------------------------------------
# what a dataset argument names: "synthetic", a named dataset, or a file

_SEQUENCE_SUFFIXES = (".txt",)  # `user item item ...`, 1-based ids
_RATINGS_SUFFIXES = (".csv", ".gz")  # item,user,rating,timestamp (".gz": a gzipped .csv)
SYNTHETIC_VERSION = 1  # bump when `synthetic` makes different sequences from the same arguments


def _is_named(name: str) -> bool:
    return name == "synthetic" or name in DATASETS or name.startswith("amazon2018:")


def _resolve_path(name: str) -> tuple[str, Path]:
    """("sequences" | "ratings", path) of a dataset given as a file path; DataError for anything else."""
    as_path = Path(name).expanduser()
    hint = f"Give a dataset name ({', '.join(known_datasets()[:-1])}) or the path of a data file."
    if as_path.is_dir():
        near = [*as_path.glob("*"), *as_path.glob("*/*")]  # two levels: a big tree is not walked
        inside = sorted(str(p) for p in near if p.suffix in _SEQUENCE_SUFFIXES + _RATINGS_SUFFIXES and p.is_file())[:5]
        found = f" Data files inside it: {', '.join(inside)}." if inside else " It holds no .txt, .csv or .csv.gz file."
        raise DataError(f"{as_path} is a directory, not a dataset file.{found} {hint}")
    looks_like_path = as_path.suffix in _SEQUENCE_SUFFIXES + _RATINGS_SUFFIXES or os.sep in name or name.startswith("~")
    if not looks_like_path:
        raise DataError(f"unknown dataset {name!r}. Known datasets: {', '.join(known_datasets())}")
    if not as_path.exists():
        resolved = "" if as_path.is_absolute() else f" (resolved: {as_path.resolve()})"
        raise DataError(f"no file at {as_path}{resolved}. {hint}")
    if as_path.suffix in _SEQUENCE_SUFFIXES:
        return "sequences", as_path
    if as_path.suffix in _RATINGS_SUFFIXES:
        return "ratings", as_path
    raise DataError(
        f"{as_path}: unknown file type {as_path.suffix!r}; a dataset file is .txt (one user a line: "
        "`user item item ...`) or .csv / .csv.gz (no header: item,user,rating,timestamp)"
    )


def check_dataset(name: str, data_dir: Path | None = None, download: bool = True) -> None:
    """Raise DataError up front when `name` cannot be loaded: an unknown name, a directory, a missing
    file or one of the wrong type (with the known names and what to do). For a named dataset the files
    are fetched (downloaded where missing and possible, checked against a published sha256); for a
    file, its first lines are read to catch a wrong layout early."""
    if name == "synthetic":
        return
    if _is_named(name):
        fetch(name, data_dir, download)
        return
    kind, path = _resolve_path(name)
    if kind == "sequences":
        read_sequence_file(path, max_lines=200)
    else:
        read_ratings_csv(path, max_rows=2000)


def fingerprint(
    name_or_path: str, data_dir: Path | None = None, download: bool = True, synthetic_args: dict | None = None
) -> str:
    """sha256 hex naming a dataset's content, for a run's hash.

    - "synthetic": the digest of the generator's resolved arguments (`synthetic`'s defaults updated by
      `synthetic_args`) and SYNTHETIC_VERSION.
    - a named dataset: its files are fetched (as `load_dataset` would); a file with a published sha256
      uses it (fetch has checked the file against it), another one is hashed (cached, `file_sha256`).
    - a file path: the file's sha256 (cached).
    One file gives its own digest; several give the sha256 of their digests in the order of
    `Source.files` (e.g. games: sequences, then titles).
    """
    if name_or_path == "synthetic":
        args = inspect.signature(synthetic).bind_partial(**(synthetic_args or {}))
        args.apply_defaults()
        spec = {"generator": "markov", "version": SYNTHETIC_VERSION, "args": dict(args.arguments)}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    if synthetic_args:
        raise DataError(f"synthetic_args apply to the synthetic dataset only, not to {name_or_path!r}")
    if _is_named(name_or_path):
        files = fetch(name_or_path, data_dir, download)
        published = _source(name_or_path).sha256
        digests = [sha if sha is not None else file_sha256(f) for f, sha in zip(files, published)]
    else:
        digests = [file_sha256(_resolve_path(name_or_path)[1])]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(f"sha256:{d}\n" for d in digests).encode()).hexdigest()


def load_dataset(
    name: str, preprocess: Preprocess | None = None, data_dir: Path | None = None, download: bool = True
) -> SequenceData:
    """Load a dataset by name (see `known_datasets()`) or by file path.

    Named processed files (beauty, sports, toys, games) are used as published; `preprocess` applies to
    ratings files (amazon2018:<Category>, or a path to a `.csv`/`.csv.gz` in that layout). A `.txt`
    path is read as `user item item ...` with 1-based ids.
    """
    if name == "synthetic":
        return synthetic()
    if not _is_named(name):
        kind, as_path = _resolve_path(name)
        if kind == "sequences":
            seqs = read_sequence_file(as_path)
            return SequenceData(as_path.stem, seqs, int(max(s.max() for s in seqs)), info={"source": str(as_path)})
        data = preprocess_interactions(*read_ratings_csv(as_path), preprocess or Preprocess(), as_path.stem)
        data.info["source"] = str(as_path)
        return data
    src = _source(name)
    files = fetch(name, data_dir, download)
    if src.kind == "ratings":
        data = preprocess_interactions(*read_ratings_csv(files[0], amazon=True), preprocess or Preprocess(), name)
    else:
        seqs = read_sequence_file(files[0], one_based=src.kind == "sequences")
        n_items = int(max(s.max() for s in seqs))
        titles = read_titles(files[1], n_items) if len(files) > 1 else None
        if titles is not None:
            missing = [i for i in range(1, n_items + 1) if not titles[i]]
            if missing:
                raise DataError(f"{name}: {len(missing)} items have no title in {files[1]} (first id {missing[0] - 1})")
        data = SequenceData(name, seqs, n_items, titles, info={})
    data.info.update(source=str(files[0]), note=src.note)
    return data


def synthetic(
    n_users: int = 300, n_items: int = 100, seed: int = 0, min_len: int = 5, max_len: int = 20, n_next: int = 3
) -> SequenceData:
    """Seeded sequences with real sequential structure: each item is followed by one of `n_next`
    preferred successors most of the time, so a sequential model can beat popularity."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(1, n_items + 1, size=(n_items + 1, n_next))
    popularity = rng.zipf(1.5, size=n_items).astype(float)
    popularity /= popularity.sum()
    if n_items < max_len:
        raise ValueError(f"synthetic data needs n_items >= max_len ({n_items} < {max_len})")
    seqs = []
    for _ in range(n_users):
        length = int(rng.integers(min_len, max_len + 1))
        seq = [int(rng.choice(n_items, p=popularity)) + 1]
        while len(seq) < length:
            follow = rng.random() < 0.8
            nxt = int(successors[seq[-1], rng.integers(n_next)]) if follow else int(rng.integers(1, n_items + 1))
            while nxt in seq:  # items do not repeat within a user, as in the real data
                nxt = int(rng.integers(1, n_items + 1))
            seq.append(nxt)
        seqs.append(np.array(seq, dtype=np.int64))
    return SequenceData("synthetic", seqs, n_items, info={"seed": seed, "generator": "markov"})


# --------------------------------------------------------------------------------------------------
# statistics


def dataset_stats(data: SequenceData) -> dict:
    """One row of the paper's dataset table, plus sequence length percentiles."""
    lengths = np.array([len(s) for s in data.sequences])
    return {
        "dataset": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": int(lengths.sum()),
        "density_pct": float(100.0 * lengths.sum() / (data.n_users * data.n_items)),
        "len_mean": float(lengths.mean()),
        "len_p50": float(np.percentile(lengths, 50)),
        "len_p90": float(np.percentile(lengths, 90)),
        "len_max": int(lengths.max()),
    }


# --------------------------------------------------------------------------------------------------
# tensors for training and evaluation


def pad_left(seqs: list[np.ndarray], max_len: int) -> torch.Tensor:
    """The last `max_len` items of each sequence, left padded with 0: LongTensor [N, max_len]."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        if len(s):
            out[i, max_len - len(s) :] = s
    return torch.from_numpy(out)


def train_examples(split: Split, max_len: int, targets: str = "all") -> dict[str, torch.Tensor]:
    """Training rows from the training part of each sequence (docs/architecture.md).

    targets="all": one row a user, every position predicts the next item (SASRec style);
    "last": one row a user, only the last item is a target (the authors' code);
    "prefixes": one row for every prefix, its next item the target (E4SRec).
    """
    train = [s for s in split.train if len(s) >= 2]
    if targets == "all":
        inp, tgt = pad_left([s[:-1] for s in train], max_len), pad_left([s[1:] for s in train], max_len)
    elif targets == "last":
        inp = pad_left([s[:-1] for s in train], max_len)
        tgt = torch.zeros_like(inp)
        tgt[:, -1] = torch.tensor([s[-1] for s in train])
    elif targets == "prefixes":
        prefixes = [s[:t] for s in train for t in range(1, len(s))]
        inp = pad_left(prefixes, max_len)
        tgt = torch.zeros_like(inp)
        tgt[:, -1] = torch.tensor([s[t] for s in train for t in range(1, len(s))])
    else:
        raise ValueError(f"unknown targets {targets!r}: use 'all', 'last' or 'prefixes'")
    return {"input": inp, "target": tgt}


def truncation_summary(split: Split, max_len: int, targets: str = "all") -> dict[str, int]:
    """What cutting sequences to `max_len` removes, counted as `train_examples` and `eval_inputs` build
    their rows (print it once a run, e.g. with `truncation_line`):

    rows, targets_used: training rows and target positions with a loss (`(target > 0).sum()`);
    targets_cut: next-item targets of the training sequences that fall outside the window (only
    targets="all" drops targets: a long sequence keeps its last `max_len`); rows_cut / items_cut:
    training rows whose input lost older items, and how many items they lost; users_without_target:
    users whose training part has one item (no row); valid_cut / test_cut: users whose evaluation
    history is longer than `max_len` (the model reads only its last `max_len` items).
    """
    if targets not in ("all", "last", "prefixes"):
        raise ValueError(f"unknown targets {targets!r}: use 'all', 'last' or 'prefixes'")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    n = np.array([len(s) for s in split.train], dtype=np.int64)
    n = n[n >= 2]
    inputs = n - 1  # input length of the one row a user ("all", "last") = its number of next-item targets
    out = {"max_len": max_len, "targets": targets, "users_without_target": int(split.n_users - len(n))}
    if targets == "all":
        used = np.minimum(inputs, max_len)
        out.update(rows=len(n), targets_used=int(used.sum()), targets_cut=int((inputs - used).sum()),
                   rows_cut=int((inputs > max_len).sum()), items_cut=int(np.maximum(inputs - max_len, 0).sum()))
    elif targets == "last":
        out.update(rows=len(n), targets_used=len(n), targets_cut=0,
                   rows_cut=int((inputs > max_len).sum()), items_cut=int(np.maximum(inputs - max_len, 0).sum()))
    else:  # a prefix of length t (1..n-1) a row; those longer than max_len lose t - max_len items
        over = np.maximum(inputs - max_len, 0)  # prefixes of a user longer than max_len
        out.update(rows=int(inputs.sum()), targets_used=int(inputs.sum()), targets_cut=0,
                   rows_cut=int(over.sum()), items_cut=int((over * (over + 1) // 2).sum()))
    for stage, drop in (("valid", 2), ("test", 1)):
        out[f"{stage}_cut"] = int(sum(len(s) - drop > max_len for s in split.data.sequences))
    return out


def truncation_line(summary: dict) -> str:
    """One line for a run's log from `truncation_summary`."""
    s = summary
    return (
        f"max_len {s['max_len']}, targets={s['targets']}: {s['rows']} training rows, {s['targets_used']} targets "
        f"used, {s['targets_cut']} cut; {s['rows_cut']} rows lost {s['items_cut']} older input items; "
        f"{s['users_without_target']} users without a training target; histories cut: "
        f"{s['valid_cut']} valid, {s['test_cut']} test"
    )


def shuffle_inputs(inputs: torch.Tensor, users: np.ndarray, seed: int) -> torch.Tensor:
    """Rows of left-padded item ids with each row's items (not its padding) in a seeded random order.

    Row r belongs to user index `users[r]` and is permuted by `np.random.default_rng((seed, users[r]))`,
    so a user's order depends only on the seed, the user and the row's items, the same for every model
    (for models with the same window `max_len`). Padding stays on the left.
    """
    users = np.asarray(users)
    if len(users) != len(inputs):
        raise ValueError(f"shuffle_inputs: {len(users)} user indices for {len(inputs)} rows")
    out = inputs.clone()
    arr = out.numpy()  # shares memory with out (CPU tensor)
    lengths = (arr != 0).sum(axis=1)
    width = arr.shape[1]
    for r, (u, n) in enumerate(zip(users, lengths)):
        if n > 1:
            perm = np.random.default_rng((int(seed), int(u))).permutation(n)
            arr[r, width - n :] = arr[r, width - n :][perm]
    return out


def eval_inputs(
    split: Split, stage: str, max_len: int, shuffle_seed: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """(input [U, max_len], target [U], full histories) of every user for a stage. With `shuffle_seed`
    each input row's items are shuffled (`shuffle_inputs`); targets and histories stay as they are."""
    histories, targets = split.stage(stage)
    inputs = pad_left(histories, max_len)
    if shuffle_seed is not None:
        inputs = shuffle_inputs(inputs, np.arange(len(histories)), shuffle_seed)
    return inputs, torch.from_numpy(targets), histories


def subset_users(data: SequenceData, k: int | None, seed: int) -> SequenceData:
    """A seeded subset of `k` users (`util.seeded_subset`), in their original order; items keep their ids
    (the item table and the candidates cover the whole catalogue). `k` None or >= n_users: all users."""
    keep = seeded_subset(data.n_users, k, seed)
    if keep is None:
        return data
    return SequenceData(data.name, [data.sequences[u] for u in keep], data.n_items, data.titles,
                        dict(data.info, user_subset=k, subset_seed=seed))
