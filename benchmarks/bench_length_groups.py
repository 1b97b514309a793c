"""Does grouping a batch by sequence length pay on this device? One training step of SASRec and
BERT4Rec, grouped (`models.sasrec.length_groups(by_length=True)`) and as one padded pass (`False`).

The baselines split every batch into up to 7 power-of-two length groups: on a CPU that skips the
padding most users carry; on a GPU each group adds kernel launches and host syncs. This times a
step (forward, backward, AdamW) of each way on the same real batch, interleaved, the device
synchronised around each call (`slmrec_lib.timing.timed`), bf16 autocast on a GPU as the `gpu`
profile trains, and writes `results/benchmarks/length_groups_<device>.csv` with the medians.

    SLMREC_DATA_DIR=../shared/data python benchmarks/bench_length_groups.py --dataset beauty
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slmrec_lib import paths  # noqa: E402
from slmrec_lib.data import train_examples  # noqa: E402
from slmrec_lib.experiment import DataConfig, atomic_write_text, get_split  # noqa: E402
from slmrec_lib.models import bert4rec, sasrec  # noqa: E402
from slmrec_lib.timing import _autocast, timed  # noqa: E402


def step_call(model: torch.nn.Module, batch: dict[str, torch.Tensor], by_length: bool, bf16: bool):
    """One optimizer step of `model` on `batch`, with length grouping forced on or off."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    groups = functools.partial(sasrec.length_groups, by_length=by_length)
    autocast = _autocast(next(model.parameters()).device, bf16)  # bf16 on a GPU only, as the timing benchmark

    def call():
        # both model modules call length_groups by name: point them at the forced version for this call
        with _patched(groups), autocast:
            loss, _ = model(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return call


@contextlib.contextmanager
def _patched(fn):
    saved = sasrec.length_groups, bert4rec.length_groups
    sasrec.length_groups = bert4rec.length_groups = fn
    try:
        yield
    finally:
        sasrec.length_groups, bert4rec.length_groups = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-bf16", action="store_true", help="fp32 on a GPU too")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = get_split(DataConfig(dataset=args.dataset))
    torch.manual_seed(0)
    examples = train_examples(split, 50, "all")
    rows = torch.randperm(len(examples["input"]))[: args.batch]
    batch = {k: v[rows].to(device) for k, v in examples.items()}
    models = {
        "SASRec": sasrec.SASRec(split.n_items, sasrec.SASRecConfig(hidden=64, layers=2, heads=2, max_len=50)),
        "BERT4Rec": bert4rec.BERT4Rec(split.n_items, bert4rec.BERT4RecConfig(max_len=50)),
    }
    calls = {}
    for name, model in models.items():
        model.to(device).train()
        for by_length in (True, False):
            calls[(name, by_length)] = step_call(model, batch, by_length, bf16=not args.no_bf16)
    seconds = timed(calls, device, args.warmup, args.repeats)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    out = pd.DataFrame([dict(model=name, grouped=by_length, ms_per_step=1000 * statistics.median(s),
                             batch=args.batch, dataset=args.dataset, device=device_name,
                             bf16=device.type == "cuda" and not args.no_bf16, repeats=args.repeats)
                        for (name, by_length), s in seconds.items()])
    print(out.to_string(index=False))
    for name in models:
        ms = out[out.model == name].set_index("grouped").ms_per_step
        print(f"{name}: one padded pass takes {ms[False] / ms[True]:.2f}x the time of the grouped step")
    path = Path(args.out) if args.out else paths.results_dir("benchmarks") / f"length_groups_{device.type}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.to_csv(index=False), path)
    print(f"saved: {path}")


if __name__ == "__main__":
    main()
