"""How much the shared instruction prefix saves when the LLM recommender scores users.

For each depth, times `LLMRec.score_all` on the same batch of users with `share_prefix` off (the
whole prompt runs for every user) and on (the instruction's key/value cache, computed once for the
weights, is reused; exact). Warm-up first, the device synchronised around every timed call, the
median of `--repeats` runs kept. Writes one row per (depth, mode) to
`results/benchmarks/prefix_cache.csv` (or `--out`) and prints the speed-ups.

    python benchmarks/bench_prefix_cache.py --backbone smollm2 --layers 4 8 --batch 64
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slmrec_lib import paths  # noqa: E402
from slmrec_lib.backbones import load_backbone  # noqa: E402
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_scoring(model: LLMRec, inp: torch.Tensor, repeats: int) -> float:
    """Median seconds of one `score_all` over the batch (after one warm-up call)."""
    model.score_all(inp)
    times = []
    for _ in range(repeats):
        sync(inp.device)
        t0 = time.perf_counter()
        model.score_all(inp)
        sync(inp.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="smollm2", help='"tiny", "smollm2" or an HF folder')
    ap.add_argument("--layers", type=int, nargs="+", default=[4, 8], help="depths to time (first k layers)")
    ap.add_argument("--batch", type=int, default=64, help="users per score_all call")
    ap.add_argument("--max-len", type=int, default=30, help="items in each prompt")
    ap.add_argument("--n-items", type=int, default=12101, help="rows of the (random) item table; Beauty's count")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None, help="CSV path (default results/benchmarks/prefix_cache.csv)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(args.n_items + 1, 128, generator=g) * 0.1
    inp = torch.randint(1, args.n_items + 1, (args.batch, args.max_len), generator=g)
    inp[: args.batch // 4, : args.max_len // 2] = 0  # a quarter of the users have short histories
    inp = inp.to(device)
    where = f"{torch.cuda.get_device_name(device)}" if device.type == "cuda" else (
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (shared machine)")
    rows = []
    for k in args.layers:
        backbone, tok = load_backbone(args.backbone)
        model = LLMRec(backbone, tok, table, LLMRecConfig(n_layers=k, max_len=args.max_len)).to(device).eval()
        seconds = {}
        for share in (False, True):
            model.cfg.share_prefix = share
            seconds[share] = time_scoring(model, inp, args.repeats)
        model.cfg.share_prefix = False
        plain = model.score_all(inp)[:, 1:]
        model.cfg.share_prefix = True
        diff = (model.score_all(inp)[:, 1:] - plain).abs().max().item()
        for share in (False, True):
            rows.append(dict(backbone=args.backbone, layers=k, batch=args.batch, prompt_tokens=model.tokens_per_example,
                             prefix_tokens=len(model.instr_ids), mode="shared_prefix" if share else "plain",
                             seconds=round(seconds[share], 5), users_per_second=round(args.batch / seconds[share], 2),
                             speedup=round(seconds[False] / seconds[share], 3), max_abs_score_diff=diff,
                             device=where, torch=torch.__version__))
        print(f"{args.backbone} {k} layers, batch {args.batch}, {model.tokens_per_example} positions "
              f"({len(model.instr_ids)} instruction): plain {seconds[False] * 1e3:.1f} ms, shared prefix "
              f"{seconds[True] * 1e3:.1f} ms, speed-up x{seconds[False] / seconds[True]:.2f}, max |diff| {diff:.2e}")
        del model, backbone
    out = Path(args.out) if args.out else paths.results_dir("benchmarks") / "prefix_cache.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
