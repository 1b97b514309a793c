"""Small helpers every layer uses: atomic file writes, file digests, seeded subsets, execution fields.

It imports nothing from the rest of the library, so any module may import it.

- `atomic_write_bytes / atomic_write_text / atomic_torch_save / atomic_savez`: write to a temporary file in the
  target's folder, flush and fsync it, then `os.replace` it onto the target (and fsync the folder):
  a reader sees the old file or the new one, never a torn one, even after a power cut. A temporary
  file a killed writer left behind is named `.<name>.tmp<pid>...` and `remove_stale_temps` clears it.
- `sha256_file(path)`: hex digest, read in 1 MiB chunks.
- `seeded_subset(n, k, seed)`: the sorted indices of a seeded random subset of `k` of `range(n)`,
  or None when `k` is None or covers everything (so "all users" has one spelling).
- `execution()` / `execution_fields(cls)`: a config field that sets how work is done (progress bars,
  batch sizes of scoring, chunk sizes, caches) but not what is computed is declared with
  `field(default=..., metadata=EXECUTION)`; `config.py` leaves such fields out of a run's hash and
  `training.fit` lets them change between an interrupted run and its resumption.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

EXECUTION = {"execution": True}  # dataclass field metadata: the field does not change results


def execution_fields(cls_or_obj) -> frozenset[str]:
    """Names of the fields of a config dataclass that are marked execution-only."""
    return frozenset(f.name for f in dataclasses.fields(cls_or_obj) if f.metadata.get("execution"))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp{os.getpid()}")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    _atomic(path, lambda fh: fh.write(data))


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write_bytes(text.encode(), path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    _atomic(path, lambda fh: torch.save(obj, fh))


def atomic_savez(path: Path, compressed: bool = False, **arrays) -> None:
    """numpy's savez (or savez_compressed) of `arrays`, written atomically like the others."""
    save = np.savez_compressed if compressed else np.savez
    _atomic(path, lambda fh: save(fh, **arrays))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove temporary files that a killed atomic write left in `folder`; returns what was removed.
    Only call it where no other process writes into `folder` at the same time (a run's folder under
    its lock)."""
    removed = []
    for path in Path(folder).glob(".*.tmp*"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seeded_subset(n: int, k: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random `k` of `range(n)`; None when `k` is None or >= n (all)."""
    if k is None or k >= n:
        return None
    if k < 1:
        raise ValueError(f"a subset needs at least 1 element, got {k}")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
