"""How fast P5Rec scores the 1 + 999 candidates of a user, by `chunk_rows` (decoding rows a forward).

P5 scores each candidate's identifier by likelihood, feeding the candidates' prefix tree one digit
position at a time in chunks of `chunk_rows` rows. The chunk size changes how the work is batched, not
what is computed (it is left out of a run's hash), so this measures seconds a user and peak GPU memory
for each size on the profile's own P5 model and data, and checks that every size gives the scores of
the first one. The weights are the backbone's with fresh (zero) LoRA adapters: the compute does not
depend on them.

    python benchmarks/bench_p5_chunks.py --profile gpu --dataset sports --users 32 --chunk-rows 256 1024 4096

Rows are added to `results/<profile>/p5_chunk_rows.csv` (one per chunk size; rows of the same profile,
dataset, device and size are replaced). The gpu profile's `p5_params` then name the size to use.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slmrec_lib import experiment, paths, studies  # noqa: E402
from slmrec_lib.data import eval_inputs  # noqa: E402
from slmrec_lib.profiles import get_profile  # noqa: E402

KEY = ["profile", "dataset", "device", "chunk_rows"]


def measure(profile: str, dataset: str, n_users: int, chunk_rows: list[int], seed: int = 0) -> pd.DataFrame:
    """One row per chunk size: seconds a user (after a warm-up group), peak GPU memory, score agreement."""
    from slmrec_lib.builders import build_model

    cfg = studies.p5(get_profile(profile), dataset)
    split = experiment.get_split(cfg.data)
    torch.manual_seed(seed)
    model = build_model(cfg, split, profile)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    group = model.cfg.score_users
    users = np.sort(np.random.default_rng(seed).choice(split.n_users, size=min(n_users + group, split.n_users),
                                                       replace=False))
    inputs, targets, _ = eval_inputs(split, "test", model.max_len)
    protocol = cfg.eval_protocols[0]  # the profile's sampled protocol (1 + 999 for gpu)
    negatives = torch.from_numpy(split.negatives(protocol.n_negatives, protocol.seed)[users])
    cand = torch.cat([targets[users, None], negatives], dim=1).to(device)  # (U, 1 + negatives)
    inp = inputs[users].to(device)
    rows, reference = [], None
    for size in chunk_rows:
        model.cfg.chunk_rows = size
        with torch.no_grad():
            model.score_candidates(inp[:group], cand[:group])  # warm-up group, not timed
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            scores = model.score_candidates(inp[group:], cand[group:]).float().cpu()
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        reference = scores if reference is None else reference
        rows.append(dict(
            profile=profile, dataset=dataset, device=experiment.device_name(), git_sha=experiment.git_sha(),
            protocol=protocol.name, chunk_rows=size, score_users=group, layers=cfg.model.layers, users=len(scores),
            seconds_per_user=seconds / len(scores),
            peak_gpu_gb=torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else float("nan"),
            max_abs_diff=float((scores - reference).abs().max()),
            same_positive_ranks=bool(((scores > scores[:, :1]).sum(1) == (reference > reference[:, :1]).sum(1)).all()),
            p5_config=str(asdict(model.cfg)),
        ))
        print(f"chunk_rows {size}: {rows[-1]['seconds_per_user']:.3f} s a user, "
              f"peak {rows[-1]['peak_gpu_gb']:.1f} GB, max |diff| {rows[-1]['max_abs_diff']:.2e}", flush=True)
    return pd.DataFrame(rows)


def save(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add the rows to `path`, replacing earlier rows of the same key; written atomically."""
    if path.exists():
        old = pd.read_csv(path)
        keep = ~old.set_index(KEY).index.isin(frame.set_index(KEY).index)
        frame = pd.concat([old[keep], frame], ignore_index=True)
    experiment.atomic_write_text(frame.to_csv(index=False), path)
    return frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--dataset", default="sports")
    parser.add_argument("--users", type=int, default=32, help="users timed (after a warm-up group)")
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--out", default=None, help="default: results/<profile>/p5_chunk_rows.csv")
    args = parser.parse_args(argv)
    if any(c < 1 for c in args.chunk_rows) or args.users < 1:
        parser.error("--users and every --chunk-rows must be >= 1")
    frame = measure(args.profile, args.dataset, args.users, args.chunk_rows)
    out = Path(args.out) if args.out else paths.results_dir(args.profile) / "p5_chunk_rows.csv"
    save(frame, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
