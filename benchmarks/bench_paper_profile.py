"""The paper profile's training path at Llama-2-7B's shape, bounded: step time and peak memory on one GPU.

Runs, through the runner (`slmrec_lib.experiment.run`), the `paper` profile with its backbone set to
the random 7B shape in bf16 (`llama2-7b-shape:0:bf16`, built on the GPU; Llama-2-7B itself is not
needed for time and memory) and its data set to Beauty (the Amazon 2018 files are not on the lent
machine): the SASRec item table, the E4SRec_8 teacher, E4SRec_32 and the SLMRec_4<-8 student, each
for `--steps` optimizer steps of the profile's 32 rows a forward x 8 accumulated (the authors'
effective batch of 256) and evaluated on `--eval-users` test users. The run folders go to a scratch
results directory (`SLMREC_RESULTS_DIR`, default a temporary folder), so committed runs are untouched.

Per model (one CSV row): the median optimizer-step time, forward rows and grad_accum, the peak GPU
memory of its run (`torch.cuda.max_memory_allocated`, reset before each run; the item table and the
teacher are finished first, so each peak is that model's own), parameter counts, the device. Bounded
settings differ from the profile's only in: max_steps, a validation after every step on
`--valid-users` users (the history then gives each step's time; validation is outside the step
time), warmup capped at a quarter of the steps, no intermediate checkpoints, the SASRec item table
for `--sasrec-steps` steps.

From the measured step times, an estimate of the paper profile's hours on one such GPU for Amazon
2018 Clothing and Movies (users from ../shared/paper/datasets.csv, the paper's Table 1: 1,219,678 and
297,529; one training row a user, `llm_targets="last"`): training (epochs x ceil(users / 256) steps),
one test pass, and the validations the profile asks (every 100 steps on all users), apart.
NOTE: the item count changes only the output layer (377k items: 32 x 128 x 377k multiply-adds a
forward, small against the decoder), so Beauty's step time stands for both.

    python benchmarks/bench_paper_profile.py                 # on the GPU: results/gpu/paper_profile_7b*.csv
    python benchmarks/bench_paper_profile.py --smoke --out /tmp/p.csv    # CPU: tiny backbone, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slmrec_lib import paths  # noqa: E402

BACKBONE = "llama2-7b-shape:0:bf16"
PAPER_SETS = ("Cloth", "Movie")  # the paper's Amazon 2018 sets of the estimate (rows of paper/datasets.csv)


def paper_users() -> dict[str, int]:
    """{"amazon2018:<category>": users} of `PAPER_SETS`, from the paper's Table 1 (paper/datasets.csv)."""
    table = pd.read_csv(paths.paper_dir() / "datasets.csv").set_index("dataset")
    return {f"amazon2018:{table.loc[d, 'amazon2018_category']}": int(table.loc[d, "users"]) for d in PAPER_SETS}


PAPER_USERS = paper_users()


def bounded_profile(steps: int, valid_users: int, eval_users: int, sasrec_steps: int, smoke: bool = False):
    """The paper profile at the 7B shape on Beauty, each LLM run `steps` optimizer steps (see the header);
    `smoke`: the same path on the tiny backbone and synthetic data, a CPU check in seconds."""
    from slmrec_lib.profiles import get_profile

    paper = get_profile("paper")

    def bounded(train, **extra):
        return replace(train, max_steps=steps, eval_every=1, valid_users=valid_users,
                       warmup_steps=min(train.warmup_steps, steps // 4), checkpoint_every=10**9,
                       checkpoint_minutes=None, progress=False, **extra)

    over = dict(datasets=("beauty",), eval_users=eval_users, backbone=BACKBONE,
                teacher_train=bounded(paper.teacher_train), student_train=bounded(paper.student_train),
                baseline_train=replace(paper.baseline_train, max_steps=sasrec_steps, valid_users=valid_users,
                                       patience=None, progress=False))
    if smoke:
        tiny = get_profile("smoke")
        small = dict(batch_size=4, grad_accum=2, mixed_precision="no")
        over.update(datasets=("synthetic",), backbone="tiny:4", depth=4, mid=2, small=1, gpu_required=False,
                    n_negatives=tiny.n_negatives, llm_params=tiny.llm_params, item_table_params=tiny.item_table_params,
                    teacher_train=bounded(paper.teacher_train, **small),
                    student_train=bounded(paper.student_train, **small),
                    baseline_train=replace(over["baseline_train"], batch_size=64, mixed_precision="no"))
    return get_profile("paper", **over)


def step_seconds(history: list[dict]) -> list[float]:
    """Each optimizer step's training seconds, from a history with a validation after every step
    (`seconds` there is the training time so far, validation excluded)."""
    totals = [h["seconds"] for h in history]
    return [b - a for a, b in zip([0.0] + totals[:-1], totals)]


def measure(prof, dataset: str) -> list[dict]:
    """Run the item table, E4SRec_mid, E4SRec_depth and SLMRec_small<-mid in that order; one row a run."""
    from slmrec_lib import experiment, studies, timing

    on_gpu = torch.cuda.is_available()
    runs = [("item table", studies.item_run(prof, dataset)),
            (f"E4SRec_{prof.mid}", studies.e4srec(prof, dataset, prof.mid)),
            (f"E4SRec_{prof.depth}", studies.e4srec(prof, dataset, prof.depth)),
            (f"SLMRec_{prof.small}<-{prof.mid}", timing.student_config(prof, dataset, 0))]
    rows = []
    for label, cfg in runs:
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**30 if on_gpu else None  # what earlier runs left (should be ~0)
        frame = experiment.run(cfg, prof)
        peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None
        result = json.loads((experiment.run_dir(cfg, prof) / "train_result.json").read_text())
        per_step = step_seconds(result["history"]) if cfg.train.eval_every == 1 else []
        test = frame[(frame.stage == "test")].iloc[0]
        rows.append(dict(
            model=label, kind=cfg.model.kind, backbone=cfg.model.backbone or "", layers=getattr(cfg.model.params, "n_layers", None),
            teacher_layers=cfg.model.teacher_layers, config_hash=cfg.hash, steps=result["steps"],
            step_ms_median=1e3 * statistics.median(per_step) if per_step else None,
            step_ms_first=1e3 * per_step[0] if per_step else None,
            step_ms_mean=1e3 * result["train_seconds"] / max(result["steps"], 1),
            forward_rows=cfg.train.batch_size, grad_accum=cfg.train.grad_accum,
            rows_per_step=cfg.train.batch_size * cfg.train.grad_accum, mixed_precision=cfg.train.mixed_precision,
            gradient_checkpointing=False, peak_gpu_gb=peak, gpu_gb_before=before, train_params=int(test.train_params),
            inference_params=int(test.inference_params), eval_users=int(test.n_users),
            eval_seconds_per_user=float(test.eval_seconds_per_user), device=experiment.device_name(),
            torch=torch.__version__, dataset=dataset, profile=prof.name))
        print(f"[paper-7b] {label}: step {rows[-1]['step_ms_median'] or rows[-1]['step_ms_mean']:.1f} ms "
              f"({cfg.train.batch_size} x {cfg.train.grad_accum} rows), peak "
              f"{'-' if peak is None else f'{peak:.1f} GB'}", flush=True)
    return rows


def hours(rows: pd.DataFrame, prof_epochs: dict[str, int]) -> pd.DataFrame:
    """The paper profile's hours on one GPU of the measured kind, per Amazon 2018 dataset and LLM model;
    validations as the paper profile asks them (its `eval_every`, on all users)."""
    from slmrec_lib.profiles import get_profile

    paper = get_profile("paper")
    validate_every = {"e4srec": paper.teacher_train.eval_every, "slmrec": paper.student_train.eval_every}
    out = []
    llm = rows[rows.kind != "sasrec"]
    for dataset, users in PAPER_USERS.items():
        for r in llm.itertuples():
            epochs = prof_epochs[r.kind]
            steps = epochs * math.ceil(users / r.rows_per_step)
            step_s = (r.step_ms_median if pd.notna(r.step_ms_median) else r.step_ms_mean) / 1e3
            validations = steps // validate_every[r.kind]
            out.append(dict(dataset=dataset, users=users, users_source="../shared/paper/datasets.csv (paper Table 1)",
                            model=r.model, epochs=epochs, optimizer_steps=steps, step_ms=1e3 * step_s,
                            train_hours=steps * step_s / 3600,
                            test_eval_hours=users * r.eval_seconds_per_user / 3600,
                            validation_hours=validations * users * r.eval_seconds_per_user / 3600,
                            device=r.device))
    frame = pd.DataFrame(out)
    frame["train_and_test_hours"] = frame.train_hours + frame.test_eval_hours
    return frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=16, help="optimizer steps of each LLM run")
    ap.add_argument("--valid-users", type=int, default=32, help="users of the validation after each step")
    ap.add_argument("--eval-users", type=int, default=256, help="test (and final validation) users")
    ap.add_argument("--sasrec-steps", type=int, default=30, help="optimizer steps of the item table")
    ap.add_argument("--smoke", action="store_true", help="tiny backbone, synthetic data: the CPU check")
    ap.add_argument("--scratch", default=None, help="results dir of the runs (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="default: results/gpu/paper_profile_7b.csv (+ _hours.csv)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else paths.results_dir("gpu") / "paper_profile_7b.csv"  # before the scratch dir
    if not args.smoke and not torch.cuda.is_available():
        print("error: the 7B-shape run needs a GPU (use --smoke on a CPU)", file=sys.stderr)
        return 2
    os.environ["SLMREC_RESULTS_DIR"] = args.scratch or tempfile.mkdtemp(prefix="paper7b-")
    prof = bounded_profile(args.steps, args.valid_users, args.eval_users, args.sasrec_steps, smoke=args.smoke)
    dataset = prof.datasets[0]
    print(f"[paper-7b] profile {prof.name} at {prof.backbone} on {dataset}: {args.steps} steps a run, runs in "
          f"{os.environ['SLMREC_RESULTS_DIR']}", flush=True)
    from slmrec_lib.util import atomic_write_text

    rows = pd.DataFrame(measure(prof, dataset))
    atomic_write_text(rows.to_csv(index=False), out)
    est = hours(rows, {"e4srec": prof.teacher_train.epochs, "slmrec": prof.student_train.epochs})
    hours_out = out.with_name(out.stem + "_hours.csv")
    atomic_write_text(est.to_csv(index=False), hours_out)
    print(rows.drop(columns=["torch", "profile"]).to_string(index=False))
    print(est[["dataset", "model", "optimizer_steps", "step_ms", "train_hours", "test_eval_hours",
               "validation_hours"]].to_string(index=False))
    print(f"wrote {out} and {hours_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
