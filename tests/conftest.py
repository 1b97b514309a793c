"""Shared fixtures: real data through SLMREC_DATA_DIR, synthetic data for everything else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # deterministic kernels and no oversubscription next to other jobs


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of real Amazon files (../shared/data here); tests that need it skip without it,
    except in CI, where a missing folder is a failure."""
    value = os.environ.get("SLMREC_DATA_DIR")
    if not value or not Path(value).is_dir():
        if os.environ.get("CI"):
            pytest.fail("SLMREC_DATA_DIR must point at the real data in CI (.ci/run sets it)")
        pytest.skip("SLMREC_DATA_DIR is not set to a folder of real data")
    return Path(value)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Tests write results, figures and caches under a temporary folder, never into the repo.
    The backbone cache stays shared (SLMREC_CACHE_DIR) so the de-quantised SmolLM2 is built once."""
    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SLMREC_FIGURES_DIR", str(tmp_path / "figures"))
