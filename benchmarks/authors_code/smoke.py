"""The CPU check of the benchmark: the whole path at tiny size, so the GPU call is not its first run.

Writes a tiny random 8-layer LLaMA folder (the book's `tiny` backbone, saved) and a seeded synthetic
sequence file (500 users over 1,100 items: their code draws 999 negatives a row from the items that
occur, so the catalogue must be larger than that), then runs run.py with `--profile smoke`: the book's
SASRec item table (128-d), their E4SRec_4 / E4SRec_8 / SLMRec_4<-8 for a few steps in the authors'
environment, the book's three, all scored by the book's evaluator. About 2-4 minutes on 2 cores.

    python benchmarks/authors_code/smoke.py --source DIR --authors-site DIR [--work DIR] [--out CSV]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

N_USERS, N_ITEMS = 500, 1100


def write_sequences(path: Path, seed: int = 0) -> Path:
    """Users walk the catalogue in small seeded steps (so there is sequential structure) from a
    uniform start (so nearly every item occurs); one line `user item item ...`, 1-based ids."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(1, N_USERS + 1):
        item = int(rng.integers(1, N_ITEMS + 1))
        seq = [item]
        for _ in range(int(rng.integers(5, 16)) - 1):
            item = (item + int(rng.integers(1, 4)) - 1) % N_ITEMS + 1
            if item not in seq:
                seq.append(item)
        lines.append(" ".join(map(str, [u, *seq])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    occurring = len({int(i) for line in lines for i in line.split()[1:]})
    if occurring < 999 + 16:
        raise RuntimeError(f"only {occurring} items occur in {path}; their sampler needs more than 1015")
    return path


def write_tiny_backbone(folder: Path, layers: int = 8) -> Path:
    from slmrec_lib.backbones import tiny_backbone

    model, tokenizer = tiny_backbone(num_hidden_layers=layers)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--authors-site", required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/authors_code_smoke"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    import run

    work = args.work.resolve()
    data = write_sequences(work / "data" / "smoke_synthetic.txt")
    backbone = write_tiny_backbone(work / "tiny_llama_8")
    out = args.out or work / "authors_code_smoke.csv"
    return run.main(["--source", str(args.source), "--dataset", str(data), "--backbone", str(backbone),
                     "--profile", "smoke", "--work", str(work), "--authors-site", args.authors_site,
                     "--seeds", *map(str, args.seeds), "--out", str(out)])


if __name__ == "__main__":
    sys.exit(main())
