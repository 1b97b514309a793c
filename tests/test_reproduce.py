"""slmrec_lib.reproduce: notebooks run in order, cell output streamed, stage times written, failures named."""

from __future__ import annotations

import csv
import io
import os

import nbformat
import pytest

from slmrec_lib import reproduce as rp


def _notebook(path, *sources):
    """A notebook with a tagged parameters cell (`profile`) and the given code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a test notebook"), params,
                *(nbformat.v4.new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)
    return path


def _stage_rows(folder):
    with open(folder / rp.STAGE_TIMES, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(autouse=True)
def _no_progress_log(monkeypatch):
    """reproduce() sets SLMREC_PROGRESS_LOG for its kernels; undo that after each test."""
    monkeypatch.setenv(rp.PROGRESS_LOG_ENV, "unset")  # records the value to restore
    monkeypatch.delenv(rp.PROGRESS_LOG_ENV)


def test_runs_in_order_streams_output_and_writes_stage_times(tmp_path, monkeypatch, capfd):
    first = _notebook(tmp_path / "a.ipynb", "import os\nprint('progress log:', os.environ['SLMREC_PROGRESS_LOG'])")
    second = _notebook(tmp_path / "b.ipynb", "import sys\nprint('profile is', profile, file=sys.stderr)")
    out, stream = tmp_path / "out", io.StringIO()
    rows = rp.reproduce([first, second], out, {"profile": "smoke"}, stream=stream)
    text = stream.getvalue()
    assert f"progress log: {out.resolve() / 'progress.log'}" in text  # the kernel inherits the variable
    assert "profile is smoke" in text  # stderr of a cell, with the injected parameter
    assert "a cell 2/4" in text  # markdown, parameters, injected parameters, code
    assert text.index("== a.ipynb") < text.index("== b.ipynb")
    assert "ok: b.ipynb in" in text
    assert [r["notebook"] for r in rows] == ["a.ipynb", "b.ipynb"]
    assert [r["status"] for r in _stage_rows(out)] == ["ok", "ok"]
    assert (out / "a.ipynb").is_file() and (out / "b.ipynb").is_file()
    assert "Ending Cell" not in text
    assert "running over TCP" not in capfd.readouterr().err  # the kernel's own stderr


def test_failure_names_the_executed_notebook_and_stops(tmp_path):
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    never = _notebook(tmp_path / "never.ipynb", "print('ran')")
    out, stream = tmp_path / "out", io.StringIO()
    with pytest.raises(rp.ReproduceError, match=r"bad.ipynb failed .*ValueError: boom.*out/bad.ipynb"):
        rp.reproduce([bad, never], out, {"profile": "smoke"}, stream=stream)
    assert [(r["notebook"], r["status"]) for r in _stage_rows(out)] == [("bad.ipynb", "failed")]
    assert not (out / "never.ipynb").exists()
    assert "failed: bad.ipynb in" in stream.getvalue()


def test_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(rp.ReproduceError, match="no notebook to run: .*nope.ipynb"):
        rp.reproduce([tmp_path / "nope.ipynb"], tmp_path / "out", {"profile": "smoke"})
    assert rp.main(["--profile", "smoke", "--out", str(tmp_path / "out"), str(tmp_path / "nope.ipynb")]) == 1


def test_kernel_config_is_not_plain_tcp():
    import zmq

    manager = rp.kernel_config().KernelManager
    if zmq.has("curve"):
        assert manager.transport_encryption == "auto"
    elif os.name == "posix":
        assert manager.transport == "ipc"


def test_cell_lines_are_rewritten_and_noise_dropped():
    import logging

    cells = rp._CellLines()
    cells.notebook, cells.n_cells = "02_main_table", 9
    record = logging.LogRecord("papermill", logging.INFO, __file__, 1, "Executing Cell 3" + "-" * 40, (), None)
    assert cells.filter(record)
    assert record.getMessage().endswith("] 02_main_table cell 3/9")
    ending = logging.LogRecord("papermill", logging.INFO, __file__, 1, "Ending Cell 3" + "-" * 40, (), None)
    assert not cells.filter(ending)
    blank = logging.LogRecord("papermill", logging.INFO, __file__, 1, "\n", (), None)
    assert not cells.filter(blank)


def test_parameters_read_as_papermill_reads_them(tmp_path, monkeypatch):
    assert [rp.parameter_value(v) for v in ("3", "0.5", "True", "None", "toys")] == [3, 0.5, True, None, "toys"]
    seen = {}
    monkeypatch.setattr(rp, "reproduce", lambda notebooks, out, parameters: seen.update(parameters) or [])
    monkeypatch.setattr(rp, "check_data", lambda profile, dataset: [])
    assert rp.main(["--profile", "cpu", "-p", "dataset", "toys", "-p", "seeds", "2", "--out", "x", "a.ipynb"]) == 0
    assert seen == {"profile": "cpu", "dataset": "toys", "seeds": 2}


def test_stage_times_keep_the_latest_run_of_each_notebook(tmp_path):
    path = tmp_path / rp.STAGE_TIMES
    rp.write_stage_times([dict(notebook="00_data.ipynb", status="ok", started="t0", seconds=5.0),
                          dict(notebook="01_layer_scan.ipynb", status="failed", started="t0", seconds=9.0)], path)
    rp.write_stage_times([dict(notebook="01_layer_scan.ipynb", status="ok", started="t1", seconds=7.5)], path)
    assert [(r["notebook"], r["status"], r["seconds"]) for r in rp.read_stage_times(path)] == [
        ("00_data.ipynb", "ok", 5.0), ("01_layer_scan.ipynb", "ok", 7.5)]


def test_missing_data_stops_before_any_kernel(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLMREC_DATA_DIR", str(tmp_path / "nodata"))
    monkeypatch.setattr("slmrec_lib.data._download", lambda url, dest: (_ for _ in ()).throw(OSError("no network")))
    started = []
    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: started.append(a))
    assert rp.main(["--profile", "cpu", "--out", str(tmp_path / "out"), "a.ipynb"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nodata' / 'amazon2014' / 'Beauty.txt'} is missing" in err and "SLMREC_DATA_DIR" in err
    assert not started
    assert rp.check_data("smoke", None) == []


def test_real_data_is_found(real_data_dir, monkeypatch):
    monkeypatch.setenv("SLMREC_DATA_DIR", str(real_data_dir))
    assert rp.check_data("cpu", None) == [real_data_dir.resolve() / "amazon2014" / "Beauty.txt"]
    assert rp.check_data("cpu", "sports") == [real_data_dir.resolve() / "amazon2014" / "Sports_and_Outdoors.txt"]


def test_pretrain_command_trains_the_books_runs_in_workers():
    cmd = rp.pretrain_command("cpu", None, 2)
    assert cmd[1:] == ["-m", "slmrec_lib.run", "--profile", "cpu", "--workers", "2"]
    assert rp.pretrain_command("gpu", "sports", 3)[-4:] == ["--dataset", "sports", "--workers", "3"]


def test_pretrain_streams_the_workers_lines_and_times_the_stage(tmp_path):
    import sys

    out = io.StringIO()
    row = rp.pretrain("smoke", None, 2, tmp_path, stream=out,
                      command=[sys.executable, "-c", "print('[w0] all runs done'); print('[w1] all runs done')"])
    assert row["notebook"] == rp.TRAIN_STAGE and row["status"] == "ok"
    assert "[w0] all runs done" in out.getvalue() and "[w1] all runs done" in out.getvalue()
    assert [r["notebook"] for r in _stage_rows(tmp_path)] == [rp.TRAIN_STAGE]


def test_pretrain_failure_is_said_and_the_notebooks_go_on(tmp_path):
    import sys

    out = io.StringIO()
    row = rp.pretrain("smoke", None, 2, tmp_path, stream=out, command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert row["status"] == "failed"
    assert "exit code 3" in out.getvalue() and "the notebooks train what is left" in out.getvalue()


def test_train_workers_below_one_is_refused(capsys):
    assert rp.main(["--out", "x", "--profile", "smoke", "--train-workers", "0", "nb.ipynb"]) == 2
    assert "--train-workers must be at least 1" in capsys.readouterr().err
