"""Run profiles: how big every study of the book is on a given machine.

    smoke  synthetic data, a tiny random LLaMA, a few steps: every notebook's default, for CI.
    cpu    real Beauty (a seeded user subset), SmolLM2-135M cut to at most 8 layers: the book on 2 cores.
    gpu    SmolLM2-135M (all 30 layers), full Beauty and Sports, 3 seeds: the committed results.
    paper  the paper's settings for users with the hardware: Llama-2-7B (32 layers) by path, the
           Amazon 2018 categories, lr 1e-3, batch 256, 3 epochs teacher / 5 epochs student.

Depth mapping: `depth` is the deepest model (the paper's E4SRec* with 32 layers), `mid` the teacher
of the paper's 4<-8 student, `small` the student's depth. With SmolLM2 (30 layers) that is 30 / 8 / 4.

    python -m slmrec_lib.profiles --check cpu     # exits non-zero, naming the known ones, if unknown
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace

from .models.bert4rec import BERT4RecConfig
from .models.gru4rec import GRU4RecConfig
from .models.llmrec import LLMRecConfig
from .models.p5 import P5Config
from .models.sasrec import SASRecConfig
from .training import TrainConfig


@dataclass(frozen=True)
class Profile:
    name: str  # smoke | cpu | gpu | paper
    description: str  # one line for figure captions
    datasets: tuple[str, ...]  # datasets of the studies; the first is each notebook's default
    max_users: int | None  # seeded subset of users of each dataset (None: all users)
    eval_users: int | None  # validation and test on a seeded subset of this many users (None: all)
    backbone: str  # LLM backbone: "tiny:<layers>", "smollm2" or an HF folder path
    depth: int  # layers of the deepest LLM model (the paper's E4SRec*, 32 layers)
    mid: int  # the teacher depth of the paper's SLMRec_4<-8 (8)
    small: int  # the student depth (4)
    scan_depths: tuple[int, ...]  # E4SRec_k depths of the layer scan (RQ1)
    block_counts: tuple[int, ...]  # b of the block-count study (RQ5)
    seeds: tuple[int, ...]  # seeds of the main table and the ablations (the layer scan uses the first)
    n_negatives: int  # negatives of the sampled protocol (the paper: 999)
    full_ranking: bool  # also evaluate with full ranking (every item, history masked)
    baseline_params: dict = field(default_factory=dict)  # kind ("sasrec", "gru4rec", "bert4rec") -> its config
    baseline_train: TrainConfig = field(default_factory=TrainConfig)  # training of the baselines
    item_table_params: SASRecConfig = field(default_factory=SASRecConfig)  # the SASRec whose item embeddings the LLMs read
    llm_params: LLMRecConfig = field(default_factory=LLMRecConfig)  # shared by teacher and student (n_layers set per run)
    teacher_train: TrainConfig = field(default_factory=TrainConfig)  # training of E4SRec_k / teachers
    student_train: TrainConfig = field(default_factory=TrainConfig)  # training of SLMRec students
    p5_params: P5Config = field(default_factory=P5Config)  # P5 (backbone and n_layers set per run)
    p5_train: TrainConfig = field(default_factory=TrainConfig)  # training of P5
    p5_eval_users: int | None = None  # P5 scores 1000 candidates by likelihood: a seeded user subset
    llm_targets: str = "last"  # training rows of the LLM models: "last" (the authors') or "prefixes"
    control_depths: tuple[int, ...] = ()  # E4SRec depths of the depth controls and the ladder's LLM rows
    # (empty: small, mid and depth)
    gpu_required: bool = False  # LLM models train only on a GPU (baselines may train anywhere); without
    # one, notebooks render from saved results

    @property
    def paper_depths(self) -> dict[int, int]:
        """Our depth -> the paper's (32 / 8 / 4), for setting rows beside the paper's."""
        return {self.depth: 32, self.mid: 8, self.small: 4}


T = TrainConfig
_SASREC = SASRecConfig(hidden=64, layers=2, heads=2, max_len=50, dropout=0.5)
_BASELINE = dict(sasrec=_SASREC, gru4rec=GRU4RecConfig(max_len=50), bert4rec=BERT4RecConfig(max_len=50))
_ITEM_TABLE = replace(_SASREC, hidden=128)
_LLM = LLMRecConfig(max_len=30, lora_r=16, lora_alpha=16, lora_dropout=0.05)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="smoke: synthetic data, tiny random 12-layer LLaMA, a few steps (a pipeline check, not a result)",
        datasets=("synthetic",),
        max_users=None,
        eval_users=None,
        backbone="tiny:12",
        depth=12,
        mid=8,
        small=4,
        scan_depths=(1, 4, 12),
        block_counts=(1, 2, 4),
        seeds=(0,),
        n_negatives=50,
        full_ranking=True,
        baseline_params=dict(sasrec=replace(_SASREC, hidden=16),
                             gru4rec=GRU4RecConfig(max_len=20, embed=16, hidden=16),
                             bert4rec=BERT4RecConfig(max_len=20, hidden=16)),
        baseline_train=T(epochs=2, batch_size=64, patience=None, progress=False),
        item_table_params=replace(_ITEM_TABLE, hidden=16),
        # a short prompt: the tiny tokenizer is character-level, and the paper's prompt is ~250 characters
        llm_params=replace(_LLM, max_len=10, lora_r=4, lora_alpha=4, instruction="Items:", response="\nNext:"),
        teacher_train=T(epochs=1, batch_size=32, lr=3e-3, patience=None, progress=False),
        student_train=T(epochs=1, batch_size=32, lr=3e-3, patience=None, progress=False),
        p5_params=P5Config(max_len=5, lora_r=4, lora_alpha=4),
        p5_train=T(epochs=1, batch_size=32, lr=3e-3, patience=None, progress=False),
        p5_eval_users=30,
        control_depths=(4,),  # CI: one depth shows the controls run
    ),
    "cpu": Profile(
        name="cpu",
        description=("cpu: Beauty (all users' training data; 500 test users), SmolLM2-135M cut to 8 layers, "
                     "LLMs 40 steps of 16, 1 seed, 2 CPU cores"),
        datasets=("beauty",),
        max_users=None,
        eval_users=500,
        backbone="smollm2",
        depth=8,
        mid=8,
        small=4,
        scan_depths=(1, 2, 4, 8),
        block_counts=(1, 2, 4),
        seeds=(0,),
        n_negatives=999,
        full_ranking=False,
        baseline_params=_BASELINE,
        baseline_train=T(epochs=5, batch_size=256, schedule="constant", patience=None, valid_users=500),
        item_table_params=_SASREC,  # d0 = 64: the SASRec baseline's own table, trained once for both rows
        llm_params=_LLM,
        # 40 steps (80 until 2026-12-01): the book from scratch in under 20 minutes on 2 idle cores
        teacher_train=T(max_steps=40, batch_size=16, lr=1e-3, warmup_steps=5, patience=None, valid_users=250),
        student_train=T(max_steps=40, batch_size=16, lr=1e-3, warmup_steps=5, patience=None, valid_users=250),
        p5_params=P5Config(max_len=10),
        p5_train=T(max_steps=50, batch_size=16, lr=1e-3, patience=None),
        p5_eval_users=10,  # 1000 candidates by likelihood: about 10 CPU-seconds a user at 8 layers
        control_depths=(4,),  # each control is a 40-step LLM run (~35 s on 2 cores): the student's depth
    ),
    "gpu": Profile(
        name="gpu",
        description="gpu: full Beauty and Sports, SmolLM2-135M (30 layers), 3 seeds, H200 GPUs (timing on one)",
        datasets=("beauty", "sports"),
        max_users=None,
        eval_users=None,
        backbone="smollm2",
        depth=30,
        mid=8,
        small=4,
        scan_depths=(1, 2, 4, 8, 16, 24, 30),
        block_counts=(1, 2, 4),
        seeds=(0, 1, 2),
        n_negatives=999,
        full_ranking=True,
        baseline_params=_BASELINE,
        baseline_train=T(epochs=200, batch_size=256, patience=10, mixed_precision="bf16", progress=False),
        item_table_params=_ITEM_TABLE,
        llm_params=_LLM,
        teacher_train=T(epochs=3, batch_size=256, lr=1e-3, warmup_steps=20, patience=None,
                        valid_users=4000, mixed_precision="bf16", progress=False),
        student_train=T(epochs=5, batch_size=256, lr=1e-3, warmup_steps=20, patience=None,
                        valid_users=4000, mixed_precision="bf16", progress=False),
        # P5 scores 1,000 candidates a user by likelihood: 8 users at once (1.4 GB a user at 8 layers, so
        # about 5 GB at 30) and 500 users to validate and test; the first try (2 at once, 2,000 users)
        # did not finish in 12 min. Measured on the H200: the Beauty run's process held 98 GB while
        # scoring (allocator cache included), so two P5 runs do not fit on one GPU. chunk_rows is an
        # execution setting (not in the hash); results/gpu/p5_chunk_rows.csv (H200, Sports, 16 users):
        # 0.31 s a user at 256 rows, 0.12 at 1024, 0.10 at 4096 (peak 35, 38, 48 GB).
        p5_params=P5Config(max_len=20, score_users=8, chunk_rows=4096),
        p5_train=T(epochs=3, batch_size=64, lr=1e-3, patience=None, mixed_precision="bf16", progress=True),
        p5_eval_users=500,
        gpu_required=True,
    ),
    "paper": Profile(
        name="paper",
        description="paper: Llama-2-7B (32 layers), Amazon 2018 Clothing and Movies, the paper's settings",
        datasets=("amazon2018:Clothing_Shoes_and_Jewelry", "amazon2018:Movies_and_TV"),
        max_users=None,
        eval_users=None,
        backbone=os.environ.get("SLMREC_PAPER_BACKBONE", "meta-llama/Llama-2-7b-hf"),
        depth=32,
        mid=8,
        small=4,
        scan_depths=(1, 2, 4, 8, 16, 24, 32),
        block_counts=(1, 2, 4, 8),
        seeds=(0, 1, 2),
        n_negatives=999,
        full_ranking=False,
        baseline_params=_BASELINE,
        baseline_train=T(epochs=200, batch_size=256, patience=10, mixed_precision="bf16", progress=True),
        item_table_params=_ITEM_TABLE,
        llm_params=_LLM,
        # the authors' effective batch of 256 (8 GPUs x 32 rows) as 32 rows a forward x 8 accumulated
        # steps: a 32-layer step of 32 rows peaked at 38.7 GB on an H200, 256 at once do not fit
        teacher_train=T(epochs=3, batch_size=32, grad_accum=8, lr=1e-3, warmup_steps=100, patience=None,
                        eval_every=100, mixed_precision="bf16"),
        student_train=T(epochs=5, batch_size=32, grad_accum=8, lr=1e-3, warmup_steps=50, patience=None,
                        eval_every=100, mixed_precision="bf16"),
        p5_params=P5Config(max_len=20),
        p5_train=T(epochs=3, batch_size=64, lr=1e-3, patience=None, mixed_precision="bf16"),
        p5_eval_users=5000,
        gpu_required=True,
    ),
}


class ProfileError(ValueError):
    pass


def get_profile(name: "str | Profile", **overrides) -> Profile:
    """The named profile, with fields replaced by `overrides` (e.g. datasets=("sports",)); a Profile
    is returned as it is (with the overrides), so that an overridden profile reaches every layer."""
    if isinstance(name, Profile):
        return replace(name, **overrides) if overrides else name
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="PROFILE", required=True)
    args = parser.parse_args(argv)
    try:
        prof = get_profile(args.check)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(prof.description)
    return 0


if __name__ == "__main__":
    sys.exit(main())
