"""Run the book's studies without notebooks (e.g. on a GPU machine), writing result rows.

    python -m slmrec_lib.run --profile gpu --study main_table layer_scan --dataset beauty sports \
        --budget-minutes 9

Runs already finished (rows.csv present under results/<profile>/runs/) are skipped, so calling it again
continues where the last call stopped; `--budget-minutes` stops starting new runs after that long, so a
call fits a time-limited machine. `--list` prints the runs and whether each is done.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import experiment, studies
from .experiment import MODEL_KINDS
from .profiles import ProfileError, get_profile


def plan(profile: str, names: list[str], datasets: list[str], seeds: list[int] | None = None,
         models: list[str] | None = None) -> list:
    """Every study's runs, in order (P5 last), without repeats; `seeds` keeps only those seeds and
    `models` only those model kinds (a run's dependencies, e.g. the item table, still train)."""
    if models is not None and (unknown := set(models) - set(MODEL_KINDS)):
        raise ValueError(f"unknown model kind(s) {sorted(unknown)}; known: {sorted(MODEL_KINDS)}")
    out, seen = [], set()
    for dataset in datasets:
        for name in names:
            for cfg in studies.study(name, profile, dataset):
                if seeds is not None and cfg.seed not in seeds:
                    continue
                if models is not None and cfg.model.kind not in models:
                    continue
                if cfg.hash not in seen:
                    seen.add(cfg.hash)
                    out.append(cfg)
    return sorted(out, key=lambda c: c.model.kind == "p5")  # P5's slow scoring last


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--study", nargs="+", default=list(studies.STUDIES), help=f"of {list(studies.STUDIES)}")
    parser.add_argument("--dataset", nargs="+", default=None, help="default: the profile's datasets")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds")
    parser.add_argument("--models", nargs="+", default=None, help=f"only these model kinds, of {sorted(MODEL_KINDS)}")
    parser.add_argument("--budget-minutes", type=float, default=None, help="start no new run after this long")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    try:
        prof = get_profile(args.profile)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    datasets = args.dataset or list(prof.datasets)
    try:
        cfgs = plan(args.profile, args.study, datasets, args.seeds, args.models)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = lambda c: (experiment.run_dir(c, args.profile) / "rows.csv").exists()  # noqa: E731
    if args.list:
        for c in cfgs:
            print(f"{'done' if done(c) else 'todo'}  {c.hash}  {c.data.dataset:10s} seed {c.seed}  {c.label}")
        return 0
    start = time.time()
    for i, cfg in enumerate(cfgs):
        if done(cfg):
            continue
        if args.budget_minutes is not None and time.time() - start > 60 * args.budget_minutes:
            print(f"budget of {args.budget_minutes} min spent; {sum(not done(c) for c in cfgs)} runs left", flush=True)
            return 3
        t0 = time.time()
        experiment.run(cfg, args.profile)
        print(f"[{i + 1}/{len(cfgs)}] {cfg.label} {cfg.data.dataset} seed {cfg.seed}: {time.time() - t0:.0f} s "
              f"(total {time.time() - start:.0f} s)", flush=True)
    print("all runs done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
