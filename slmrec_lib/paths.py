"""Every path the library uses resolves here, from the repository root or environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where datasets live: `SLMREC_DATA_DIR` if set, else `data/` under the repository."""
    return Path(os.environ.get("SLMREC_DATA_DIR", REPO_ROOT / "data")).expanduser().resolve()


def cache_dir() -> Path:
    """Derived files (de-quantised backbones, ...): `SLMREC_CACHE_DIR` or `cache/` under the repo."""
    path = Path(os.environ.get("SLMREC_CACHE_DIR", REPO_ROOT / "cache")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str) -> Path:
    """Result rows and run folders of one profile: `SLMREC_RESULTS_DIR` or `results/` under the repo."""
    root = Path(os.environ.get("SLMREC_RESULTS_DIR", REPO_ROOT / "results")).expanduser().resolve()
    return root / profile


def figures_dir(profile: str) -> Path:
    root = Path(os.environ.get("SLMREC_FIGURES_DIR", REPO_ROOT / "figures")).expanduser().resolve()
    return root / profile


def paper_dir() -> Path:
    """The paper's own numbers, shipped with the book as CSV."""
    return REPO_ROOT / "paper"
