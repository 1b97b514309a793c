"""Benchmark P5Rec (the paper's Open-P5_LLaMa row) on real data: accuracy and inference time per user.

1. Trains P5Rec (SmolLM2 cut to `--layers` decoder layers, LoRA) with `training.fit` on the E4SRec-style
   prefix examples of every user (`train_examples(..., "prefixes")`), for `--steps` optimizer steps.
2. Evaluates it under the 1 + 999 sampled protocol (`evaluation.SAMPLED_999`, test stage) on a seeded
   subset of `--test-users` users, beside Popularity on the same users.
3. Times inference per user, after one warm-up batch, for P5Rec and for E4SRec_k (`LLMRec`, the same
   backbone cut to the same depth) at each depth of `--time-depths`: sampled scoring
   (`score_candidates`, 1 positive + 999 negatives) and full ranking (`score_all`; for P5 the
   constrained beam search with `--beam` beams). Timing uses untrained adapters and, for E4SRec, a
   random item table: the compute does not depend on the weights. Wall seconds and process CPU seconds
   (all threads) are both recorded, with the load average, because the CPU may be shared.

Writes `results/benchmarks/p5_<dataset>_<device>.json` (or `--out`). Example (the CPU run of the book):

    SLMREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_p5.py --dataset beauty --layers 4 \
        --max-len 10 --steps 300 --batch-size 8 --lr 1e-3 --warmup 20 --test-users 100 \
        --time-depths 4,30 --time-users 4 --threads 1

One thread by default: on a CPU shared with other jobs, a second torch thread mostly waits for the
first (P5_4 sampled scoring measured 39 s a user with 2 threads against 12 s with 1, load about 7).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slmrec_lib import backbones, paths  # noqa: E402
from slmrec_lib.data import eval_inputs, leave_one_out, load_dataset, train_examples  # noqa: E402
from slmrec_lib.evaluation import SAMPLED_999, evaluate  # noqa: E402
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig  # noqa: E402
from slmrec_lib.models.p5 import P5Config, P5Rec  # noqa: E402
from slmrec_lib.models.popularity import Popularity  # noqa: E402
from slmrec_lib.training import TrainConfig, fit  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--backbone", default="smollm2")
    p.add_argument("--layers", type=int, default=4, help="decoder layers of the trained P5 model")
    p.add_argument("--max-len", type=int, default=10, help="history items in the P5 prompt")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps of P5 training (0: no training)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--test-users", type=int, default=100, help="seeded subset of test users (0: all)")
    p.add_argument("--eval-batch", type=int, default=4, help="users a batch in evaluation and timing")
    p.add_argument("--time-depths", default="4", help="comma-separated depths to time P5 and E4SRec_k at")
    p.add_argument("--time-users", type=int, default=4, help="users timed at each depth (after a warm-up batch)")
    p.add_argument("--beam", type=int, default=20, help="beam width of P5's full ranking")
    p.add_argument("--threads", type=int, default=1, help="torch threads (see the docstring)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=paths.REPO_ROOT, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def per_user_seconds(fn, n_users: int, batch: int) -> dict:
    """Call fn(index array) on a warm-up batch, then on `n_users` users; seconds per user."""
    fn(np.arange(n_users, n_users + batch))  # warm-up on other users
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, n_users, batch):
        fn(np.arange(start, min(start + batch, n_users)))
    return {"wall_s_per_user": (time.perf_counter() - wall) / n_users,
            "cpu_s_per_user": (time.process_time() - cpu) / n_users,
            "users": n_users, "batch": batch, "loadavg_1min_after": os.getloadavg()[0]}


def time_model(model, split, users: np.ndarray, n_users: int, batch: int) -> dict:
    """Per-user time of sampled (1 + 999) scoring and of full ranking on `users`."""
    model.eval()
    inputs, targets, _ = eval_inputs(split, "test", model.max_len)
    negatives = split.negatives(SAMPLED_999.n_negatives, SAMPLED_999.seed)
    inputs, targets, negatives = inputs[users], targets[users], torch.from_numpy(negatives[users])

    def sampled(idx):
        cand = torch.cat([targets[idx, None], negatives[idx]], dim=1)  # (b, 1000)
        with torch.no_grad():
            model.score_candidates(inputs[idx], cand)

    def full(idx):
        with torch.no_grad():
            model.score_all(inputs[idx])

    return {"sampled_1+999": per_user_seconds(sampled, n_users, batch),
            "full_ranking": per_user_seconds(full, n_users, batch)}


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out_path = Path(args.out) if args.out else paths.REPO_ROOT / "results" / "benchmarks" / f"p5_{args.dataset}_{device}.json"
    report: dict = {
        "benchmark": "bench_p5", "args": vars(args), "git_sha": git_sha(), "device": device,
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "loadavg_at_start": os.getloadavg(),
    }
    data = load_dataset(args.dataset)
    split = leave_one_out(data)
    rng = np.random.default_rng(args.seed)
    n_test = args.test_users or data.n_users
    test_users = np.sort(rng.choice(data.n_users, size=n_test, replace=False))
    report["data"] = {"name": data.name, "users": data.n_users, "items": data.n_items,
                      "test_users": int(n_test), "test_user_subset": f"seeded {args.seed}, numpy default_rng choice"}
    print(f"{data.name}: {data.n_users} users, {data.n_items} items; testing {n_test} users", flush=True)

    # ---- 1. train P5 ---------------------------------------------------------------------------
    cfg = P5Config(backbone=args.backbone, n_layers=args.layers, max_len=args.max_len, beam_width=args.beam)
    model = P5Rec(cfg, data.n_items, split.train)
    report["p5_config"] = asdict(cfg)
    report["p5_trainable_params"] = backbones.count_params(model, trainable_only=True)
    report["p5_params"] = backbones.count_params(model)
    examples = train_examples(split, args.max_len, "prefixes")
    report["train_examples"] = int(len(examples["input"]))
    if args.steps > 0:
        tcfg = TrainConfig(lr=args.lr, batch_size=args.batch_size, max_steps=args.steps, warmup_steps=args.warmup,
                           patience=None, seed=args.seed, progress=False)
        with tempfile.TemporaryDirectory(prefix="bench_p5_") as run_dir:
            result = fit(model, examples, None, tcfg, run_dir)
        report["train"] = {"config": asdict(tcfg), "steps": result.steps, "train_seconds": result.train_seconds,
                           "examples_seen": result.steps * args.batch_size,
                           "final_loss": result.history[-1]["loss"] if result.history else None}
        print(f"trained {result.steps} steps in {result.train_seconds:.0f} s", flush=True)

    # ---- 2. accuracy under 1 + 999 --------------------------------------------------------------
    t0 = time.perf_counter()
    metrics = evaluate(model, split, SAMPLED_999, "test", batch_size=args.eval_batch, users=test_users)
    report["metrics"] = {"protocol": SAMPLED_999.name, "stage": "test", "P5": metrics,
                         "eval_seconds": time.perf_counter() - t0}
    pop = Popularity.from_sequences(split.train, data.n_items)
    report["metrics"]["Popularity"] = evaluate(pop, split, SAMPLED_999, "test", users=test_users)
    print(json.dumps(report["metrics"], indent=1), flush=True)
    del model

    # ---- 3. inference time per user, P5 beside E4SRec_k ------------------------------------------
    report["timing"] = {}
    item_table = torch.randn(data.n_items + 1, 128) * 0.02  # timing only: compute does not depend on it
    for depth in [int(d) for d in args.time_depths.split(",") if d]:
        row = {}
        p5 = P5Rec(P5Config(backbone=args.backbone, n_layers=depth, max_len=args.max_len, beam_width=args.beam),
                   data.n_items, split.train)
        row[f"P5_{depth}"] = time_model(p5, split, test_users, args.time_users, args.eval_batch)
        del p5
        e4 = LLMRec.from_spec(args.backbone, item_table, LLMRecConfig(n_layers=depth))
        row[f"E4SRec_{depth}"] = time_model(e4, split, test_users, args.time_users, args.eval_batch)
        del e4
        report["timing"][str(depth)] = row
        print(json.dumps(row, indent=1), flush=True)

    report["loadavg_at_end"] = os.getloadavg()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
