"""slmrec_lib.site: executed notebooks -> static HTML pages with an index, checked in headless Chromium.

The browser tests skip where no Chromium is installed (`.ci/run` installs it with apt-get)."""

from __future__ import annotations

import base64
import io

import nbformat
import pytest

from slmrec_lib import reproduce as rp
from slmrec_lib import site

CHROMIUM = site.find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (apt-get install -y chromium)")


def _png() -> str:
    """A small real PNG (a matplotlib figure), base64 as notebooks store it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [1, 0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _executed(path, title, seconds=1.5, exception=False):
    """A notebook as papermill leaves it: a heading, an inline figure, an HTML table, papermill metadata."""
    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": _png(), "text/plain": "<Figure>"})])
    table = nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/html": "<table><tr><td>HR@10</td><td>0.25</td></tr></table>",
                                "text/plain": "HR@10 0.25"}, execution_count=2)])
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nwhat it asks"), figure, table]
    nb.metadata["papermill"] = {"duration": seconds, "exception": exception, "parameters": {"profile": "smoke"}}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def executed(tmp_path):
    src = tmp_path / "build" / "smoke"
    src.mkdir(parents=True)
    _executed(src / "00_data.ipynb", "00 · The data")
    _executed(src / "01_layer_scan.ipynb", "01 · Layer scan", seconds=12.25, exception=True)
    (src / "stage_times.csv").write_text("notebook,status,started,seconds\n00_data.ipynb,ok,2026-12-01T10:00:00,1.5\n")
    return src


def test_pages_and_index(executed, tmp_path):
    index = site.build_site(executed, tmp_path / "site" / "smoke", title="book smoke")
    out = index.parent
    assert sorted(p.name for p in out.iterdir()) == ["00_data.html", "01_layer_scan.html", "index.html"]
    text = index.read_text()
    assert '<a href="00_data.html">00_data.ipynb</a>' in text
    assert "00 · The data" in text and "01 · Layer scan" in text
    assert '<td class="num">12.2</td>' in text or '<td class="num">12.3</td>' in text
    assert '<td class="failed">failed</td>' in text  # papermill recorded an exception
    assert "profile = &#x27;smoke&#x27;" in text
    assert "2026-12-01T10:00:00" in text  # the stage times of the last make reproduce
    page = (out / "00_data.html").read_text()
    assert "data:image/png;base64," in page  # the figure is inline
    assert "<td>HR@10</td>" in page  # and the table
    assert '<a href="index.html">index</a> &middot; <a href="01_layer_scan.html">01 · Layer scan &rarr;</a>' in page
    assert '<a href="00_data.html">&larr; 00 · The data</a>' in (out / "01_layer_scan.html").read_text()


def test_rebuild_replaces_the_old_site(executed, tmp_path):
    out = tmp_path / "site" / "smoke"
    site.build_site(executed, out)
    (executed / "01_layer_scan.ipynb").unlink()
    site.build_site(executed, out)
    assert sorted(p.name for p in out.iterdir()) == ["00_data.html", "index.html"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_no_notebooks_is_a_clear_error(tmp_path):
    with pytest.raises(site.SiteError, match=r"no executed notebooks in .*make reproduce PROFILE="):
        site.build_site(tmp_path / "missing", tmp_path / "site")
    assert site.main(["--profile", "nope", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "s")]) == 1


def test_bad_chromium_variable_is_named(monkeypatch):
    monkeypatch.setenv(site.CHROMIUM_ENV, "/no/such/chromium")
    with pytest.raises(site.SiteError, match="SLMREC_CHROMIUM=/no/such/chromium is not an executable"):
        site.find_chromium()


@needs_chromium
def test_browser_every_image_loads(executed, tmp_path):
    index = site.build_site(executed, tmp_path / "site" / "smoke")
    assert site.inspect_site(index, CHROMIUM) == {"pages": 3, "images": 2, "problems": []}
    found = site.probe_page(index.parent / "00_data.html", CHROMIUM)
    assert len(found["images"]) == 1 and found["images"][0]["width"] > 0


@needs_chromium
def test_browser_reports_a_broken_image_and_a_missing_page(executed, tmp_path):
    index = site.build_site(executed, tmp_path / "site" / "smoke")
    page = index.parent / "00_data.html"
    page.write_text(page.read_text().replace("</body>", '<img src="figures/gone.png"></body>'))
    (index.parent / "01_layer_scan.html").unlink()
    problems = site.check_site(index, CHROMIUM)
    assert problems == ["00_data.html: image 'figures/gone.png' did not load",
                        "01_layer_scan.html: linked from the index but missing"]


@needs_chromium
def test_browser_site_of_an_executed_smoke_notebook(tmp_path, monkeypatch):
    """The real thing at smoke size: 00_data run by papermill (as `make reproduce` does), then the site."""
    monkeypatch.setenv(rp.PROGRESS_LOG_ENV, str(tmp_path / "progress.log"))
    out = tmp_path / "build" / "smoke"
    rp.reproduce([site.paths.REPO_ROOT / "notebooks" / "00_data.ipynb"], out, {"profile": "smoke"},
                 stream=io.StringIO())
    index = site.build_site(out, tmp_path / "site" / "smoke")
    assert site.check_site(index, CHROMIUM) == []
    images = site.probe_page(index.parent / "00_data.html", CHROMIUM)["images"]
    assert images and all(img["width"] > 0 for img in images)  # the sequence-length figure, inline
    assert "stage times" in index.read_text().lower()
