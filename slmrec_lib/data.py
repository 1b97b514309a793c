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
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
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


def read_ratings_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Amazon 2018 ratings-only layout: no header, `item,user,rating,timestamp`."""
    items, users, ratings, times = [], [], [], []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if len(row) != 4:
                raise DataError(
                    f"{path}:{lineno}: expected 4 comma-separated fields item,user,rating,timestamp, "
                    f"got {len(row)}: {row[:6]!r}"
                )
            try:
                ratings.append(float(row[2]))
                times.append(int(float(row[3])))
            except ValueError:
                raise DataError(
                    f"{path}:{lineno}: rating and timestamp must be numbers, got {row[2]!r}, {row[3]!r}"
                ) from None
            items.append(row[0])
            users.append(row[1])
    if not items:
        raise DataError(f"{path}: the file is empty")
    return np.array(users), np.array(items), np.array(ratings), np.array(times, dtype=np.int64)


def read_sequence_file(path: Path, one_based: bool = True) -> list[np.ndarray]:
    """One user a line: `user_id item_id item_id ...`, oldest first; ids become 1-based."""
    seqs = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    """Paths of a named dataset's files, downloading what is missing where a network exists."""
    src = _source(name)
    root = Path(data_dir) if data_dir else paths.data_dir()
    out = []
    for rel, url, sha in zip(src.files, src.urls, src.sha256):
        path = root / rel
        if not path.exists():
            where = f"Place the file at {path}, or set SLMREC_DATA_DIR to a folder holding {rel}."
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
        if sha is not None and _sha256(path) != sha:
            raise DataError(
                f"{name}: {path} does not match its published sha256 {sha}; the file is damaged or a different "
                "version. Delete it to download it again, or load it by path to use it as it is."
            )
        out.append(path)
    return out


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
    as_path = Path(name).expanduser()
    if name not in DATASETS and not name.startswith("amazon2018:"):
        if as_path.suffix in (".csv", ".gz", ".txt") or os.sep in name:
            if not as_path.exists():
                raise DataError(f"no file at {as_path}")
            if as_path.suffix == ".txt":
                seqs = read_sequence_file(as_path)
                return SequenceData(as_path.stem, seqs, int(max(s.max() for s in seqs)), info={"source": str(as_path)})
            data = preprocess_interactions(*read_ratings_csv(as_path), preprocess or Preprocess(), as_path.stem)
            data.info["source"] = str(as_path)
            return data
    src = _source(name)
    files = fetch(name, data_dir, download)
    if src.kind == "ratings":
        data = preprocess_interactions(*read_ratings_csv(files[0]), preprocess or Preprocess(), name)
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


def eval_inputs(split: Split, stage: str, max_len: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """(input [U, max_len], target [U], full histories) of every user for a stage."""
    histories, targets = split.stage(stage)
    return pad_left(histories, max_len), torch.from_numpy(targets), histories
