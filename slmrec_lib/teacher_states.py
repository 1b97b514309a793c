"""Teacher states shared by the offline students of one teacher, on the CPU.

An offline student runs its frozen teacher on every training batch (where the whole-table cache of
`SLMRec.prepare_training` does not pay: the cpu profile's 40 steps of 16 rows see 640 of Beauty's
22,363 rows). The students of one teacher and seed (the ablation, the block counts) draw the same
batches, so each asks the teacher for the same states. A `TeacherStateStore` keeps the teacher's
last-token states of every batch it was asked for, keyed by the sha256 of the batch's input ids, in
one file a teacher under the cache folder; the next student reads them instead of running the teacher.

The states are the ones the live teacher computes for that very batch (same rows, same order, same
threads), so a student's numbers do not depend on whether another student ran first. The file names
the teacher run and the sha256 of its weights, the torch version and the thread count (each changes
a float reduction), and its own sha256 is kept beside it: a file that does not match is said and set
aside, and the states are computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .util import atomic_torch_save, atomic_write_text, sha256_file

SUFFIX = ".sha256"


def batch_key(input: torch.Tensor) -> str:
    """The sha256 of a batch's input ids (shape and values)."""
    ids = input.detach().to("cpu", torch.int64).contiguous()
    return hashlib.sha256(repr(tuple(ids.shape)).encode() + ids.numpy().tobytes()).hexdigest()


class TeacherStateStore:
    """The teacher's states of the batches students asked for; `get` / `put` in training, `save` after."""

    def __init__(self, path: Path, header: dict):
        self.path, self.header = Path(path), dict(header)
        self.states: dict[str, torch.Tensor] = {}
        self.added = 0
        self.hits = 0
        self._merge_saved()

    @classmethod
    def for_teacher(cls, folder: Path, teacher_run: str, teacher_sha256: str) -> TeacherStateStore:
        header = dict(teacher_run=teacher_run, teacher_sha256=teacher_sha256, torch=str(torch.__version__),
                      threads=torch.get_num_threads(), device="cpu", dtype="float32")
        tag = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:12]
        return cls(Path(folder) / f"{teacher_run}-{tag}.pt", header)

    def _merge_saved(self) -> None:
        if not self.path.exists():
            return
        sidecar = self.path.with_name(self.path.name + SUFFIX)
        problem = None
        if not sidecar.exists() or sidecar.read_text().strip() != sha256_file(self.path):
            problem = "its sha256 does not match the one written beside it"
        else:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            if saved.get("header") != self.header:
                problem = f"it was written for {saved.get('header')}, not {self.header}"
            else:
                for k, v in saved["states"].items():
                    self.states.setdefault(k, v)
        if problem:
            aside = self.path.with_name(self.path.name + ".bad")
            os.replace(self.path, aside)
            print(f"[teacher states] {self.path}: {problem}; set aside as {aside.name}, the teacher runs again",
                  flush=True)

    def get(self, input: torch.Tensor) -> list[torch.Tensor] | None:
        hit = self.states.get(batch_key(input))
        if hit is None or hit.shape[1] != input.shape[0]:
            return None
        self.hits += 1
        return list(hit.to(input.device).unbind(0))

    def put(self, input: torch.Tensor, states: list[torch.Tensor]) -> None:
        self.states[batch_key(input)] = torch.stack([s.detach().to("cpu") for s in states])
        self.added += 1

    def save(self) -> None:
        """Write the states (merged with what another process saved meanwhile), if any were added."""
        if not self.added:
            return
        self._merge_saved()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(dict(header=self.header, states=self.states), self.path)
        atomic_write_text(sha256_file(self.path) + "\n", self.path.with_name(self.path.name + SUFFIX))
        self.added = 0
