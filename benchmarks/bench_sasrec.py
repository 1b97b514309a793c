"""Train a traditional baseline on real Amazon Beauty and record quality and speed.

    SLMREC_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_sasrec.py --model sasrec

The S3-Rec / ICLRec setting: hidden 64, 2 layers, 2 heads, max length 50, dropout 0.5, lr 1e-3, batch 256,
every position a training target; model selection on validation NDCG@10 under full ranking. The test
stage is then scored under full ranking (history masked) and 1 + 99 and 1 + 999 sampled negatives
(seed 0), next to Popularity. Writes results/benchmarks/<model>_<dataset>[_<tag>].json (a dataset given
as a file path is named by the file's stem) with metrics, epochs, seconds an epoch, the command, the
device and the machine load, since the cores may be shared.

SASRec variants (SASRecConfig): --loss ce|bce, --negatives target|history (bce), --block
pre_ln|post_ln_relu|post_ln_gelu, --inner (feed-forward width); --targets all|last.

    SLMREC_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_sasrec.py --loss bce \
        --negatives history --block post_ln_gelu --epochs 200 --schedule constant --patience 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from slmrec_lib.data import leave_one_out, load_dataset, train_examples
from slmrec_lib.evaluation import EvalProtocol, evaluate
from slmrec_lib.models.bert4rec import BERT4Rec, BERT4RecConfig
from slmrec_lib.models.gru4rec import GRU4Rec, GRU4RecConfig
from slmrec_lib.models.popularity import Popularity
from slmrec_lib.models.layers import BLOCKS
from slmrec_lib.models.sasrec import LOSSES, NEGATIVES, SASRec, SASRecConfig
from slmrec_lib.paths import REPO_ROOT
from slmrec_lib.training import TrainConfig, fit
from slmrec_lib.util import atomic_write_text

PATIENCE = {"sasrec": 5, "gru4rec": 10, "bert4rec": 8}  # default --patience (README-baselines.md)
PROTOCOLS = {"full": EvalProtocol("full"), "sampled-99": EvalProtocol("sampled", 99, 0),
             "sampled-999": EvalProtocol("sampled", 999, 0)}


def build(name: str, n_items: int, args) -> torch.nn.Module:
    if name == "sasrec":
        return SASRec(n_items, SASRecConfig(max_len=args.max_len, hidden=args.hidden, layers=2, heads=2,
                                            inner=args.inner or 4 * args.hidden, dropout=args.dropout,
                                            loss=args.loss, negatives=args.negatives, block=args.block))
    if name == "gru4rec":
        return GRU4Rec(n_items, GRU4RecConfig(max_len=args.max_len, embed=args.hidden,
                                              dropout=args.dropout if args.dropout is not None else 0.3))
    if name == "bert4rec":
        return BERT4Rec(n_items, BERT4RecConfig(max_len=args.max_len, hidden=args.hidden, layers=2, heads=2,
                                                dropout=args.dropout, mask_prob=args.mask_prob))
    raise SystemExit(f"unknown model {name!r}: use sasrec, gru4rec or bert4rec")


def output_name(model: str, dataset: str, tag: str = "") -> str:
    """`<model>_<dataset>[_<tag>].json`; a dataset given as a path is named by its file's stem
    (`some/dir/Beauty.txt` -> `Beauty`), so the name never holds a folder."""
    name = Path(dataset).stem if ("/" in dataset or Path(dataset).suffix) else dataset
    return f"{model}_{name}{('_' + tag) if tag else ''}.json"


def device_info() -> dict:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sasrec", choices=["sasrec", "gru4rec", "bert4rec"])
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--epochs", type=int, default=40, help="cosine schedule length (upper bound with early stopping)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant"], help="learning-rate schedule")
    p.add_argument("--patience", type=int, default=None,
                   help="validations without improvement before stopping; default: 5 SASRec, 10 GRU4Rec, 8 BERT4Rec")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--dropout", type=float, default=None, help="default: 0.5 SASRec, 0.3 GRU4Rec, 0.2 BERT4Rec")
    p.add_argument("--loss", default="ce", choices=list(LOSSES), help="SASRec only: SASRecConfig.loss")
    p.add_argument("--negatives", default="target", choices=list(NEGATIVES),
                   help="SASRec with --loss bce only: exclude the target or the row's whole history")
    p.add_argument("--block", default="pre_ln", choices=list(BLOCKS), help="SASRec only: SASRecConfig.block")
    p.add_argument("--inner", type=int, default=None, help="SASRec feed-forward width (default: 4 x hidden)")
    p.add_argument("--targets", default="all", choices=["all", "last"],
                   help="training targets: every position (all) or the last item of each user (last)")
    p.add_argument("--mask-prob", type=float, default=0.6, help="BERT4Rec only")
    p.add_argument("--select", default="NDCG@10", help="validation metric (full ranking) that picks the epoch")
    p.add_argument("--valid-users", type=int, default=None, help="validate on a seeded subset of users")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmarks")
    p.add_argument("--tag", default="", help="suffix of the output file name")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="keep checkpoints here (an interrupted benchmark resumes); default: a temporary folder")
    args = p.parse_args()
    if args.patience is None:
        args.patience = PATIENCE[args.model]
    if args.dropout is None:
        args.dropout = {"sasrec": 0.5, "gru4rec": 0.3, "bert4rec": 0.2}[args.model]
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    load_start = load_average()

    data = load_dataset(args.dataset)
    split = leave_one_out(data)
    examples = train_examples(split, args.max_len, targets=args.targets)
    torch.manual_seed(args.seed)
    model = build(args.model, data.n_items, args)
    if torch.cuda.is_available():
        model = model.cuda()
    cfg = TrainConfig(lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
                      schedule=args.schedule,
                      select_metric=args.select, valid_users=args.valid_users, seed=args.seed,
                      mixed_precision=args.mixed_precision, progress=sys.stderr.isatty())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = fit(model, examples, split, cfg, args.run_dir or Path(tmp), PROTOCOLS["full"])
        wall = time.perf_counter() - t0

    test = {}
    pop = Popularity.from_sequences(split.train, data.n_items).to(next(model.parameters()).device)
    for pname, proto in PROTOCOLS.items():
        t = time.perf_counter()
        test[pname] = evaluate(model, split, proto, stage="test", max_len=args.max_len, batch_size=512)
        test[pname]["seconds"] = time.perf_counter() - t
        test[f"popularity/{pname}"] = evaluate(pop, split, proto, stage="test", max_len=args.max_len, batch_size=512)

    row = {
        "model": args.model, "dataset": args.dataset, "users": data.n_users, "items": data.n_items,
        "train_rows": len(examples["input"]), "train_targets": int((examples["target"] > 0).sum()),
        "model_config": dataclasses.asdict(model.cfg), "train_config": dataclasses.asdict(cfg),
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": res.epochs, "best_step": res.best_step, "steps": res.steps, "stopped_early": res.stopped_early,
        "train_seconds": res.train_seconds, "eval_seconds": res.eval_seconds, "wall_seconds": wall,
        "seconds_per_epoch": res.train_seconds / max(res.epochs, 1e-9),
        "train_cpu_seconds": res.train_cpu_seconds,
        "cpu_seconds_per_epoch": res.train_cpu_seconds / max(res.epochs, 1e-9),
        "examples_per_second": res.examples_per_second,
        "best_valid": {args.select: res.best_metric},
        "test": test, "history": res.history,
        "command": command, "device": device_info(), "load_average_start": load_start,
        "load_average_end": load_average(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / output_name(args.model, args.dataset, args.tag)
    atomic_write_text(json.dumps(row, indent=2) + "\n", path)
    short = {k: {m: round(v, 4) for m, v in d.items() if m in ("HR@10", "NDCG@10", "MRR")} for k, d in test.items()}
    print(json.dumps({"model": args.model, "epochs": res.epochs, "seconds_per_epoch": round(row["seconds_per_epoch"], 1),
                      "train_seconds": round(res.train_seconds, 1), "test": short}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
