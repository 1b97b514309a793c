"""Run the book's studies without notebooks (e.g. on a GPU machine), writing result rows.

    python -m slmrec_lib.run --profile gpu --study main_table layer_scan --dataset beauty sports \
        --budget-minutes 9

Runs already finished (rows.csv present under results/<profile>/runs/) are skipped, so calling it again
continues where the last call stopped; `--budget-minutes` stops starting new runs after that long, so a
call fits a time-limited machine. `--list` prints the runs and whether each is done.

`--workers N` trains N runs at once in N processes, spread round-robin over the visible GPUs (several
on one GPU pay where small models leave it waiting on kernel launches). The workers share the results
folder: each takes the first run, in plan order, that no other process is training (a run's folder is
locked while it trains) and whose dependencies (item table, teacher) are finished, and otherwise a
dependency that is free. The LLM runs come first in the plan, the baselines after them, P5 last.
On a CPU each worker keeps a single process's thread count (the thread count changes a CPU run's
numbers; see worker_threads), so workers there share the cores rather than split them.
A SIGTERM (e.g. from `timeout`) stops every worker: a run in training writes a checkpoint at the end
of its current step (training.fit), a run in evaluation keeps the stages it finished, and the next
call resumes them there.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback

from . import config, experiment, studies
from .builders import BuildError, check_backbone
from .config import LLM_KINDS, MODEL_KINDS
from .data import DataError, check_dataset
from .profiles import Profile, ProfileError, get_profile
from .training import CheckpointError, TrainingInterrupted


class EmptyPlan(ValueError):
    """Nothing in the studies matched what was asked (a seed or model kind the profile does not plan)."""


def plan(profile: str | Profile, names: list[str], datasets: list[str], seeds: list[int] | None = None,
         models: list[str] | None = None) -> list:
    """Every study's runs, in order (the LLM runs, then the baselines, P5 last), without repeats; `seeds`
    keeps only those seeds and `models` only those model kinds (a run's dependencies, e.g. the item table,
    still train). A filter that leaves nothing raises EmptyPlan, naming what the studies plan."""
    if models is not None and (unknown := set(models) - set(MODEL_KINDS)):
        raise ValueError(f"unknown model kind(s) {sorted(unknown)}; known: {sorted(MODEL_KINDS)}")
    profile = get_profile(profile)
    planned: list = []
    out, seen = [], set()
    for dataset in datasets:
        for name in names:
            for cfg in studies.study(name, profile, dataset):
                planned.append(cfg)
                if seeds is not None and cfg.seed not in seeds:
                    continue
                if models is not None and cfg.model.kind not in models:
                    continue
                if cfg.hash not in seen:
                    seen.add(cfg.hash)
                    out.append(cfg)
    if not out:
        raise EmptyPlan(
            f"no run of studies {names} on {datasets} matches seeds {seeds} and model kinds {models}; profile "
            f"{profile.name!r} plans seeds {sorted({c.seed for c in planned})} and kinds "
            f"{sorted({c.model.kind for c in planned})}")
    # the paper's claims first; P5's slow scoring last
    return sorted(out, key=lambda c: (c.model.kind == "p5", c.model.kind not in LLM_KINDS))


def work(cfgs: list, profile: str, budget_minutes: float | None = None, name: str = "",
         poll_seconds: float = 5.0, on_bad_checkpoint: str = "raise") -> int:
    """Train the unfinished runs of `cfgs`, sharing them with other processes: see the module docstring.
    Returns 0 when all are done, 3 when the budget ran out first, 1 when a run failed (its traceback
    is printed; the other runs go on), 128 + the signal's number when a signal stopped a training."""
    experiment.set_wait_for_busy_runs(False)  # a busy dependency makes this worker take other work
    start, failed = time.time(), set()
    tag = f"[{name}] " if name else ""
    while True:
        pending = [c for c in cfgs if not experiment.is_done(c, profile) and c.hash not in failed]
        if not pending:
            break
        if budget_minutes is not None and time.time() - start > 60 * budget_minutes:
            print(f"{tag}budget of {budget_minutes} min spent; {len(pending)} runs left", flush=True)
            return 3
        started = False
        for cfg in pending:
            chain = [d for d in config.dependencies(cfg) if not experiment.is_done(d, profile)] + [cfg]
            if any(d.hash in failed for d in chain):
                failed.add(cfg.hash)
                continue
            todo = chain[0]  # the cfg itself once its dependencies are done
            t0 = time.time()
            try:
                experiment.run(todo, profile, wait=False, on_bad_checkpoint=on_bad_checkpoint)
            except experiment.RunBusy:
                continue
            except CheckpointError as exc:  # says which file; the run is not trained over it silently
                print(f"{tag}{exc}\n{tag}(or call again with --restart-bad-checkpoints)", flush=True)
                failed.add(todo.hash)
                started = True
                break
            except TrainingInterrupted as exc:  # SIGTERM / SIGINT: its checkpoint is written
                print(f"{tag}{todo.label} {todo.data.dataset} seed {todo.seed}: {exc}", flush=True)
                return 128 + exc.signum
            except Exception:  # noqa: BLE001 - report, and go on with the other runs
                traceback.print_exc()
                print(f"{tag}FAILED {todo.label} {todo.data.dataset} seed {todo.seed} ({todo.hash})", flush=True)
                failed.add(todo.hash)
                started = True
                break
            print(f"{tag}{todo.label} {todo.data.dataset} seed {todo.seed} ({todo.hash}): {time.time() - t0:.0f} s "
                  f"(total {time.time() - start:.0f} s)", flush=True)
            started = True
            break  # back to the top: the plan's order is its priority
        if not started:
            time.sleep(poll_seconds)  # each unfinished run is, or waits on, one another process trains
    if failed:
        print(f"{tag}{len(failed)} run(s) failed: {sorted(failed)}", flush=True)
        return 1
    print(f"{tag}all runs done", flush=True)
    return 0


def worker_threads(n: int, on_gpus: bool) -> str | None:
    """CPU threads of each of `n` workers: an equal share of the cores where the runs train on GPUs; None
    (the thread count of a single process) where they train on the CPU, since there the thread count
    changes the order of float reductions and so a run's numbers (measured on the cpu profile: 9 of 24
    runs trained at 1 thread differed from 2 threads, by up to 0.004 in a metric)."""
    if not on_gpus:
        return None
    return str(max(1, (os.cpu_count() or 1) // n))


def spawn_workers(argv: list[str], n: int) -> int:
    """Run `n` worker processes of this module with `argv`, round-robin over the visible GPUs, each with
    the CPU threads of `worker_threads`; a SIGTERM or SIGINT here stops them all. Each run's rows record
    how many workers shared its device (`runs_per_device`): their clocks are no timing benchmark."""
    import torch

    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = [g for g in gpus.split(",") if g] if gpus else [str(i) for i in range(torch.cuda.device_count())]
    threads = worker_threads(n, bool(gpus))
    procs = []
    for i in range(n):
        sharing = len(range(i % len(gpus), n, len(gpus))) if gpus else n  # workers on this worker's device
        env = dict(os.environ, SLMREC_RUNS_PER_DEVICE=str(sharing))
        if threads is not None:
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        where = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else "CPU"
        shown = f"{threads} threads" if threads is not None else f"{torch.get_num_threads()} threads, as one process"
        print(f"worker w{i}: {where}, {shown}", flush=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "slmrec_lib.run", *argv, "--worker-name", f"w{i}"],
                                      env=env))

    def stop(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + 20
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [p.wait() for p in procs]
    print(f"workers' exit codes: {codes}", flush=True)
    return 0 if all(c == 0 for c in codes) else 3 if all(c in (0, 3) for c in codes) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--study", nargs="+", default=list(studies.STUDIES), help=f"of {list(studies.STUDIES)}")
    parser.add_argument("--dataset", nargs="+", default=None, help="default: the profile's datasets")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds")
    parser.add_argument("--models", nargs="+", default=None, help=f"only these model kinds, of {sorted(MODEL_KINDS)}")
    parser.add_argument("--budget-minutes", type=float, default=None, help="start no new run after this long")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each")
    parser.add_argument("--p5-chunk-rows", type=int, default=None,
                        help="P5's decoding rows a forward while scoring (default: the profile's); an execution "
                             "setting outside the run's hash, so a run in progress resumes under another size")
    parser.add_argument("--restart-bad-checkpoints", action="store_true",
                        help="a checkpoint that cannot be read is set aside (checkpoint.bad.pt) and its run starts over")
    parser.add_argument("--worker-name", default="", help=argparse.SUPPRESS)  # set by --workers
    args = parser.parse_args(argv)
    try:
        prof = get_profile(args.profile)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    if args.p5_chunk_rows is not None and args.p5_chunk_rows < 1:
        print(f"error: --p5-chunk-rows must be at least 1, got {args.p5_chunk_rows}", file=sys.stderr)
        return 2
    datasets = args.dataset or list(prof.datasets)
    try:
        for dataset in datasets:  # a bad name or a missing file is said once, before any run starts
            check_dataset(dataset)
        cfgs = plan(prof, args.study, datasets, args.seeds, args.models)
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.p5_chunk_rows is not None:
        cfgs = [config.with_execution(c, chunk_rows=args.p5_chunk_rows) if c.model.kind == "p5" else c
                for c in cfgs]
    if args.list:
        for c in cfgs:
            state = "done" if experiment.is_done(c, args.profile) else "todo"
            print(f"{state}  {c.hash}  {c.data.dataset:10s} seed {c.seed}  {c.label}")
        return 0
    try:  # a backbone that cannot load is said once, before any run trains (--list still shows the plan)
        for spec in sorted({c.model.backbone for c in cfgs if c.model.backbone is not None}):
            check_backbone(next(c for c in cfgs if c.model.backbone == spec))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        argv = list(sys.argv[1:] if argv is None else argv)
        rest = [a for i, a in enumerate(argv)  # without "--workers N" / "--workers=N"
                if not (a == "--workers" or a.startswith("--workers=") or (i and argv[i - 1] == "--workers"))]
        return spawn_workers(rest, args.workers)
    return work(cfgs, args.profile, args.budget_minutes, args.worker_name,
                on_bad_checkpoint="restart" if args.restart_bad_checkpoints else "raise")


if __name__ == "__main__":
    sys.exit(main())
