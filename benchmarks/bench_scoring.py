"""Microseconds a user for the LLM recommender's scoring speed paths, at several scoring batch sizes.

Times `LLMRec.score_all` of a k-layer model (default: the 4-layer student on SmolLM2's shape with
random weights, `smollm2-random`) over `--users` users in forwards of `--batch` rows, for each path:

- plain: the defaults (the book's committed runs);
- fp32: `score_fp32`, the user vector and item dot products in float32 (a real setting: it changes ties);
- merge: `merge_lora`, LoRA folded into the frozen weights for scoring;
- compile: `compile_scoring`, the fixed-shape forward under `torch.compile` (`score_batch_size` = batch);
- all: merge + compile + fp32.

Every path is warmed up (`--warmup` calls, which also compile), the device is synchronised around
each timed call and the median of `--repeats` is kept; the repeats of the paths are interleaved.
Each row also says how far the path's scores are from plain's (max |diff|) and, for a random
positive a user, the fraction of users whose pessimistic rank among all items is the same as
plain's (`same_rank_fraction`) and the largest rank shift: merging and compiling are exact up to
floating-point rounding, which can reorder items whose scores are that close. Writes `results/<profile>/scoring.csv` (or `--out`); the machine is in every row.

    python benchmarks/bench_scoring.py --profile gpu                 # H200: batches 256, 1024, 4096
    python benchmarks/bench_scoring.py --profile smoke --backbone tiny --batches 8 16 --users 32  # CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slmrec_lib import paths  # noqa: E402
from slmrec_lib.backbones import load_backbone  # noqa: E402
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig  # noqa: E402
from slmrec_lib.util import atomic_write_text  # noqa: E402

PATHS = {
    "plain": {},
    "fp32": dict(score_fp32=True),
    "merge": dict(merge_lora=True),
    "compile": dict(compile_scoring=True),
    "all": dict(merge_lora=True, compile_scoring=True, score_fp32=True),
}


def machine(device: torch.device) -> str:
    import platform

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def score_users(model: LLMRec, inputs: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([model.score_all(inputs[s : s + batch]) for s in range(0, len(inputs), batch)])


def pessimistic_ranks(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    pos = scores.gather(1, positive[:, None])
    return (scores[:, 1:] >= pos).sum(dim=1) - 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="gpu", help="results/<profile>/scoring.csv")
    ap.add_argument("--backbone", default="smollm2-random", help="backbone spec (backbones.load_backbone)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096], help="rows a forward")
    ap.add_argument("--users", type=int, default=None, help="users scored a timed call (default: the largest batch)")
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    ap.add_argument("--n-items", type=int, default=12101, help="rows of the random item table (Beauty's count)")
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    users = args.users or max(args.batches)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(args.n_items + 1, 128, generator=g) * 0.1
    table[0] = 0
    inputs = torch.randint(1, args.n_items + 1, (users, args.max_len), generator=g)
    inputs[: users // 4, : args.max_len // 2] = 0  # a quarter of the users have short histories
    positive = torch.randint(1, args.n_items + 1, (users,), generator=g).to(device)
    inputs = inputs.to(device)
    backbone, tok = load_backbone(args.backbone, layers=args.layers)
    model = LLMRec(backbone, tok, table, LLMRecConfig(n_layers=args.layers, max_len=args.max_len)).to(device).eval()
    with torch.no_grad():  # trained-like LoRA (B is 0 at init, which would make merging trivial)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02, generator=torch.Generator(device=p.device).manual_seed(1))
    base_cfg = model.cfg
    where = machine(device)
    rows = []
    for batch in args.batches:
        reference = None
        calls = {}
        for name in args.paths:
            cfg = dataclasses.replace(base_cfg, **PATHS[name], score_batch_size=batch)
            calls[name] = cfg
        seconds = {name: [] for name in calls}
        results = {}
        for name, cfg in calls.items():  # warm-up (and compilation) of every path first
            model.cfg, model._compiled = cfg, None
            for _ in range(args.warmup):
                results[name] = score_users(model, inputs, batch)
        compiled = {}
        for name, cfg in calls.items():  # keep each path's compiled function across the interleaved repeats
            model.cfg, model._compiled = cfg, None
            if cfg.compile_scoring:
                score_users(model, inputs[:batch], batch)
                compiled[name] = model._compiled
        for _ in range(args.repeats):
            for name, cfg in calls.items():
                model.cfg, model._compiled = cfg, compiled.get(name)
                sync(device)
                t0 = time.perf_counter()
                score_users(model, inputs, batch)
                sync(device)
                seconds[name].append(time.perf_counter() - t0)
        reference = results.get("plain")
        for name, cfg in calls.items():
            med = statistics.median(seconds[name])
            diff = same = shift = None
            if reference is not None:
                diff = (results[name][:, 1:] - reference[:, 1:]).abs().max().item()
                delta = (pessimistic_ranks(results[name], positive) - pessimistic_ranks(reference, positive)).abs()
                same, shift = (delta == 0).float().mean().item(), delta.max().item()
            rows.append(dict(backbone=args.backbone, layers=args.layers, path=name, batch=batch, users=users,
                             us_per_user=1e6 * med / users, seconds=med, repeats=args.repeats,
                             max_abs_diff_vs_plain=diff, same_rank_fraction=same, max_rank_shift=shift,
                             positions=model.tokens_per_example, n_items=args.n_items, device=where,
                             torch=torch.__version__))
            print(f"{args.backbone} {args.layers} layers, batch {batch:5d}, {name:8s}: {1e6 * med / users:9.2f} us/user"
                  f"  max|diff| {diff if diff is None else f'{diff:.2e}'}  same rank {same}  max shift {shift}", flush=True)
    model.cfg, model._compiled = base_cfg, None
    out = Path(args.out) if args.out else paths.results_dir(args.profile) / "scoring.csv"
    atomic_write_text(pd.DataFrame(rows).to_csv(index=False), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
