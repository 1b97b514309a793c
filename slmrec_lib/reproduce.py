"""Run the book's notebooks with papermill, one after another, showing a person what happens.

    python -m slmrec_lib.reproduce --profile cpu --out build/cpu notebooks/0*.ipynb
    python -m slmrec_lib.reproduce --profile cpu -p dataset toys --out build/cpu notebooks/01_layer_scan.ipynb

This is what `make reproduce` and `make notebook` call. For each notebook it prints a time-stamped header, streams the
cells' output (papermill's `log_output`: the training loop's plain progress lines, tables, messages)
to stderr, a short `cell i/n` line as each cell starts, and the seconds the notebook took. At the end
it prints every notebook's time; `<out>/stage_times.csv` (notebook, status, started, seconds) keeps
the latest run of each notebook (a notebook run again on its own replaces only its row). It stops at the first notebook that fails, naming the executed copy that holds the
traceback, and exits with status 1.

- Before the first kernel starts, the dataset's file is looked up (and downloaded where it is missing
  and a network exists): without it the run stops at once with the message that says where to put it.
- `--train-workers N` (N > 1; `make reproduce TRAIN_WORKERS=N`) first trains every run of the book's
  studies with `python -m slmrec_lib.run --workers N`, streamed here and timed as the stage `_train_runs`;
  the notebooks then read those runs back and train whatever the workers left. On a GPU machine this
  trains several runs a GPU at once; on a CPU the workers keep one process's thread count (a CPU's thread
  count changes a run's numbers, see `run.worker_threads`), so there it saves no time.
- `SLMREC_PROGRESS_LOG` is set to `<out>/progress.log` unless already set, so the training loop in
  every kernel also appends its progress lines there (`tail -f` it from another terminal).
- The kernel is started without the "Kernel is running over TCP without encryption" warning by
  giving jupyter_client's kernel manager a transport that is not plain TCP: CurveZMQ encryption
  (`KernelManager.transport_encryption = "auto"`) where pyzmq has Curve and the kernelspec declares
  it, else Unix-domain sockets (`KernelManager.transport = "ipc"`) on POSIX. Windows without Curve
  keeps plain TCP on localhost, and the warning with it.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from .util import atomic_write_text

PROGRESS_LOG_ENV = "SLMREC_PROGRESS_LOG"
STAGE_TIMES = "stage_times.csv"


class ReproduceError(RuntimeError):
    """A notebook or an argument that `reproduce` cannot run; the message says what to do."""


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def kernel_config(kernel_name: str = "python3"):
    """A traitlets Config for papermill's kernel manager that avoids unencrypted TCP (see module doc)."""
    import zmq
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from traitlets.config import Config

    config = Config()
    try:
        declared = KernelSpecManager().get_kernel_spec(kernel_name).metadata.get("supported_encryption") or []
    except NoSuchKernel:
        declared = []  # papermill itself then says the kernel is missing
    declared = [declared] if isinstance(declared, str) else declared
    if zmq.has("curve") and "curve" in [str(d).lower() for d in declared]:
        config.KernelManager.transport_encryption = "auto"
    elif os.name == "posix":
        config.KernelManager.transport = "ipc"
    return config


class _CellLines(logging.Filter):
    """Rewrites papermill's `Executing Cell 7-----` into `[hh:mm:ss] <notebook> cell 7/23` and drops its
    `Ending Cell` and `Executing notebook with kernel` lines, which say nothing a person needs."""

    _start = re.compile(r"^Executing Cell (\d+)-*$")
    _drop = re.compile(r"^(Ending Cell \d+-*|Executing notebook with kernel: .*)$")

    def __init__(self):
        super().__init__()
        self.notebook, self.n_cells = "", 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().rstrip("\n")  # stream chunks end in a newline; the handler adds one
        if not message or self._drop.match(message):
            return False
        record.msg, record.args = message, ()
        started = self._start.match(message)
        if started:
            record.msg, record.args = f"[{stamp()}] {self.notebook} cell {started.group(1)}/{self.n_cells}", ()
        return True


def _logger(stream) -> tuple[logging.Logger, _CellLines]:
    """papermill's logger, printing plain messages to `stream` through the cell-line filter."""
    log = logging.getLogger("papermill")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    cells = _CellLines()
    handler.addFilter(cells)
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, cells


def _cell_count(path: Path) -> int:
    """Cells papermill will number: all of them, plus the parameters cell it injects after the tagged one."""
    import nbformat

    cells = nbformat.read(path, as_version=4).cells
    return len(cells) + any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)


def read_stage_times(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [dict(r, seconds=float(r["seconds"])) for r in csv.DictReader(fh)]


def write_stage_times(rows: list[dict], path: Path) -> None:
    """`rows` merged into the file: a notebook run again replaces its old row, others keep theirs."""
    ran = {r["notebook"] for r in rows}
    rows = sorted([r for r in read_stage_times(path) if r["notebook"] not in ran] + rows, key=lambda r: r["notebook"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["notebook", "status", "started", "seconds"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(buf.getvalue(), path)


def summary(rows: list[dict]) -> str:
    """The stage-time table printed at the end: one line a notebook, then the total."""
    width = max([len(r["notebook"]) for r in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'status':<6}  {'seconds':>8}"]
    lines += [f"{r['notebook']:<{width}}  {r['status']:<6}  {r['seconds']:>8.1f}" for r in rows]
    total = sum(r["seconds"] for r in rows)
    lines.append(f"{'total':<{width}}  {'':<6}  {total:>8.1f}  ({total / 60:.1f} min)")
    return "\n".join(lines)


def reproduce(notebooks: list[Path], out: Path, parameters: dict, stream=None) -> list[dict]:
    """Execute `notebooks` in order into `out/`, with `parameters`; the stage-time rows (see module doc).

    Raises ReproduceError naming the executed copy when a notebook fails (after writing the times)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    stream = stream or sys.stderr
    missing = [str(nb) for nb in notebooks if not Path(nb).is_file()]
    if not notebooks or missing:
        raise ReproduceError(f"no notebook to run: {', '.join(missing) or 'the list is empty'}; give paths "
                             "of .ipynb files (`make sync-notebooks` writes them from the .py twins)")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(PROGRESS_LOG_ENV, str((out / "progress.log").resolve()))
    _, cells = _logger(stream)
    config = kernel_config()
    shown = ", ".join(f"{k} {v}" for k, v in parameters.items())
    print(f"[{stamp()}] {len(notebooks)} notebooks ({shown}) into {out}; progress lines also in "
          f"{os.environ[PROGRESS_LOG_ENV]}", file=stream, flush=True)
    rows: list[dict] = []
    for i, nb in enumerate(map(Path, notebooks), 1):
        target = out / nb.name
        cells.notebook, cells.n_cells = nb.stem, _cell_count(nb)
        print(f"\n[{stamp()}] == {nb.name} ({i}/{len(notebooks)}; {shown})", file=stream, flush=True)
        started, t0 = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(target), parameters=parameters, log_output=True,
                                progress_bar=False, config=config)
            status = "ok"
        except PapermillExecutionError as err:
            status = "failed"
            failure = f"{nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue})"
        seconds = round(time.perf_counter() - t0, 1)
        rows.append(dict(notebook=nb.name, status=status, started=started, seconds=seconds))
        write_stage_times(rows, out / STAGE_TIMES)
        print(f"[{stamp()}] {status}: {nb.name} in {seconds:.1f} s", file=stream, flush=True)
        if status != "ok":
            print("\n" + summary(rows), file=stream, flush=True)
            raise ReproduceError(f"{failure}; the executed notebook with the traceback is {target}")
    print(f"\n[{stamp()}] stage times (also in {out / STAGE_TIMES}):\n{summary(rows)}", file=stream, flush=True)
    return rows


TRAIN_STAGE = "_train_runs"


def pretrain_command(profile: str, dataset: str | None, workers: int) -> list[str]:
    """The command that trains every run of the book's studies in `workers` processes."""
    return [sys.executable, "-m", "slmrec_lib.run", "--profile", profile, *(["--dataset", dataset] if dataset else []),
            "--workers", str(workers)]


def pretrain(profile: str, dataset: str | None, workers: int, out: Path, stream=None, command=None) -> dict:
    """Train the book's runs before the notebooks (see the module doc); its stage-time row. A failure is
    said, not hidden: the notebooks then train what is left and show the error where it happens."""
    import subprocess

    stream = stream or sys.stderr
    command = command or pretrain_command(profile, dataset, workers)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(PROGRESS_LOG_ENV, str((out / "progress.log").resolve()))
    print(f"\n[{stamp()}] == training the book's runs first, {workers} at a time: {' '.join(command[1:])}",
          file=stream, flush=True)
    started, t0 = datetime.now().isoformat(timespec="seconds"), time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:
        stream.write(line)
        stream.flush()
    code = proc.wait()
    seconds = round(time.perf_counter() - t0, 1)
    status = "ok" if code == 0 else "failed"
    row = dict(notebook=TRAIN_STAGE, status=status, started=started, seconds=seconds)
    write_stage_times([row], out / STAGE_TIMES)
    if code != 0:
        print(f"[{stamp()}] training the runs stopped with exit code {code} (the lines above say which run and "
              "why); the notebooks train what is left and stop at the first error", file=stream, flush=True)
    else:
        print(f"[{stamp()}] ok: the book's runs trained in {seconds:.1f} s", file=stream, flush=True)
    return row


def check_data(profile: str, dataset: str | None) -> list[Path]:
    """The files of the dataset the notebooks will read (`dataset`, else the profile's first), found or
    downloaded before any kernel starts, so a missing file stops the run in seconds with the data
    layer's message (which names where to put it). Synthetic data and a dataset given by path: []."""
    from . import data, profiles

    try:
        name = dataset or profiles.get_profile(profile).datasets[0]
        if name == "synthetic" or Path(name).expanduser().is_file():
            return []
        return data.fetch(name)
    except (data.DataError, profiles.ProfileError) as err:
        raise ReproduceError(str(err)) from err


def parameter_value(text: str):
    """A `-p NAME VALUE` value as papermill's command line reads it: True/False/None, an int, a float, else text."""
    named = {"True": True, "False": False, "None": None}
    if text in named:
        return named[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path, help=".ipynb files, run in the order given")
    ap.add_argument("--out", type=Path, required=True, help="folder for the executed notebooks")
    ap.add_argument("--profile", required=True, help="papermill parameter `profile` (smoke, cpu, gpu, paper)")
    ap.add_argument("--dataset", default=None, help="papermill parameter `dataset` (default: the profile's)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="another papermill parameter, as papermill's own -p (e.g. -p dataset toys)")
    ap.add_argument("--train-workers", type=int, default=1,
                    help="train the book's runs first in this many processes (1: the notebooks train them)")
    args = ap.parse_args(argv)
    if args.train_workers < 1:
        print(f"error: --train-workers must be at least 1, got {args.train_workers}", file=sys.stderr)
        return 2
    parameters = {"profile": args.profile, **({"dataset": args.dataset} if args.dataset else {})}
    parameters.update({name: parameter_value(value) for name, value in args.parameter})
    try:
        for path in check_data(args.profile, parameters.get("dataset")):
            print(f"[{stamp()}] data: {path}", file=sys.stderr, flush=True)
        rows = [pretrain(args.profile, parameters.get("dataset"), args.train_workers, args.out)] \
            if args.train_workers > 1 else []
        rows += reproduce(args.notebooks, args.out, parameters)
        if rows and rows[0]["notebook"] == TRAIN_STAGE:
            print(f"[{stamp()}] with the training stage:\n{summary(rows)}", file=sys.stderr, flush=True)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
