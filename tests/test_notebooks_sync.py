"""The notebooks: each .ipynb matches its jupytext twin, is stored without outputs, and has the book's shape."""

import re
import shutil

import jupytext
import nbformat
import pytest

from slmrec_lib import book, notebook_sync, paths

FOLDER = paths.REPO_ROOT / "notebooks"
NAMES = ["00_data", "01_layer_scan", "02_main_table", "03_efficiency", "04_ablation", "05_online_kd",
         "06_block_count", "07_report", "08_baselines", "09_depth_controls"]


def test_twins_in_sync_and_without_outputs():
    assert notebook_sync.problems(FOLDER) == []


def test_the_check_catches_outputs_and_drift(tmp_path):
    for suffix in (".py", ".ipynb"):
        shutil.copy(FOLDER / f"01_layer_scan{suffix}", tmp_path)
    nb_path = tmp_path / "01_layer_scan.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    nbformat.write(nb, nb_path)
    assert any("outputs" in p for p in notebook_sync.problems(tmp_path))
    (tmp_path / "01_layer_scan.py").write_text((FOLDER / "01_layer_scan.py").read_text() + "\n# %%\nx = 1\n")
    assert any("differs" in p for p in notebook_sync.problems(tmp_path))


def test_writing_the_notebooks_again_changes_nothing(tmp_path):
    shutil.copy(FOLDER / "01_layer_scan.py", tmp_path)
    notebook_sync.write(tmp_path)
    first = (tmp_path / "01_layer_scan.ipynb").read_bytes()
    notebook_sync.write(tmp_path)
    assert (tmp_path / "01_layer_scan.ipynb").read_bytes() == first  # cell ids are stable, not random
    assert first == (FOLDER / "01_layer_scan.ipynb").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shape(name):
    """Title and question, smoke-sized literal parameters, book.start first, a saved figure, and a
    closing 'What we saw' cell that states no measured number."""
    nb = jupytext.read(FOLDER / f"{name}.py")
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {name[:2]} ")
    assert "**Question" in cells[0].source
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert 'profile = "smoke"' in params[0].source and "dataset = None" in params[0].source
    for line in params[0].source.splitlines():  # literals only: papermill replaces this cell's values
        assert re.fullmatch(r'\w+ = ("[^"]*"|None|True|False|-?\d+(\.\d+)?)(\s+#.*)?', line), line
    # before the parameters: the book's import and a snapshot of the names (book.start checks what the
    # parameters cell and papermill's injected cell add); right after them, book.start with those names
    at = cells.index(params[0])
    before = [c for c in cells[:at] if c.cell_type == "code"]
    assert len(before) == 1 and before[0].source.rstrip().endswith("_before = set(globals())")
    assert "book.start(profile, dataset, names=set(globals()) - _before)" in cells[at + 1].source
    declared = {line.split("=")[0].strip() for line in params[0].source.splitlines()}
    assert declared <= set(book.PARAMETERS), declared - set(book.PARAMETERS)
    source = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "book.figures.save(" in source and "b.figure_path(" in source
    # notebooks import only the book (and IPython's display)
    imports = re.findall(r"^(?:from|import) [\w.]+(?: import [\w, ]+)?", source, flags=re.M)
    assert set(imports) <= {"from slmrec_lib import book", "from IPython.display import Markdown, display"}, imports
    last = cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## What we saw")
    assert not re.search(r"\d+\.\d+|\d\s*%|\d+(\.\d+)?x\b", last.source), "the closing cell states a number"


def test_every_notebook_is_in_the_book():
    assert sorted(p.stem for p in FOLDER.glob("[0-9][0-9]_*.py")) == NAMES


def test_a_misspelt_papermill_parameter_is_an_error(tmp_path, monkeypatch):
    """papermill only warns about a parameter the notebook does not declare and injects it anyway: the
    book's check (book.start with the names the parameters cells defined) makes it an error."""
    import papermill as pm

    monkeypatch.setenv("SLMREC_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SLMREC_FIGURES_DIR", str(tmp_path / "figures"))
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match=r"unknown notebook parameter\(s\) \['dataste'\]"):
        pm.execute_notebook(str(FOLDER / "00_data.ipynb"), str(out), parameters={"dataste": "beauty"},
                            progress_bar=False, kernel_name="python3")
