"""The rendered book: executed notebooks of one profile as a static HTML site a reader can browse.

    python -m slmrec_lib.site --profile cpu            # build/cpu/*.ipynb -> build/site/cpu/
    python -m slmrec_lib.site --profile cpu --check    # and open it in headless Chromium

`make book PROFILE=cpu` calls the first (after `make reproduce PROFILE=cpu` has executed the
notebooks). Each notebook becomes one page through nbconvert's HTML exporter (the JupyterLab
template, images embedded, so figures and tables are inline and a page is one self-contained file);
a line of links at the top of each page leads to the index and the pages before and after;
`index.html` lists the pages with their titles, papermill's run time and status, the parameters and
the stage times `make reproduce` wrote (the latest run of each notebook). The site is built in a temporary folder and then replaces
the old one, so a failed build leaves the last good site in place.

Why nbconvert and not Jupyter Book: nbconvert is already installed with JupyterLab, builds offline
in seconds a page and keeps the executed outputs exactly as papermill wrote them; Jupyter Book 2 is a
Node.js (mystmd) tool and Jupyter Book 1 brings a Sphinx stack, both heavier than an index and pages.
Offline, a page's MathJax and require.js (loaded from a CDN by the template) do not load; the text,
tables and figures do not need them.

`check_site` opens the index and every page it links to in headless Chromium (found on PATH, or
`$SLMREC_CHROMIUM`) and reports each <img> that did not load (`naturalWidth == 0`) and each link to a
page that is missing. It runs a copy of each page with a small script appended that, at the window's
load event, writes the images' state into the DOM, which `chromium --headless --dump-dom` prints.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import paths

CHROMIUM_ENV = "SLMREC_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PROBE_ID = "slmrec-probe"


class SiteError(RuntimeError):
    """The site cannot be built or checked; the message says what is missing and what to do."""


@dataclass
class Page:
    """One notebook of the site, as the index lists it."""

    notebook: str  # file name of the executed notebook
    html: str  # file name of its page
    title: str  # its first markdown heading, else the notebook's name
    seconds: float | None  # papermill's duration, None where papermill did not run it
    status: str  # "ok", "failed" (papermill recorded an exception) or "not executed"
    parameters: dict = field(default_factory=dict)


def default_source(profile: str) -> Path:
    return paths.REPO_ROOT / "build" / profile


def default_target(profile: str) -> Path:
    return paths.REPO_ROOT / "build" / "site" / profile


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _page(nb, path: Path) -> Page:
    meta = nb.metadata.get("papermill", {})
    if not meta:
        status, seconds = "not executed", None
    else:
        status = "failed" if meta.get("exception") else "ok"
        seconds = meta.get("duration")
    return Page(notebook=path.name, html=path.stem + ".html", title=_title(nb, path.stem),
                seconds=None if seconds is None else round(float(seconds), 1), status=status,
                parameters=dict(meta.get("parameters", {})))


def _stage_times(src: Path) -> list[dict]:
    path = src / "stage_times.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def render_index(pages: list[Page], title: str, stages: list[dict]) -> str:
    """The index page: a table of the notebooks (link, title, seconds, status) and the stage times."""
    esc = html.escape
    rows = "\n".join(
        f'<tr><td><a href="{esc(p.html)}">{esc(p.notebook)}</a></td><td>{esc(p.title)}</td>'
        f'<td class="num">{"" if p.seconds is None else f"{p.seconds:.1f}"}</td>'
        f'<td class="{esc(p.status.replace(" ", "-"))}">{esc(p.status)}</td></tr>' for p in pages)
    params = sorted({json.dumps(p.parameters, sort_keys=True) for p in pages if p.parameters})
    shown = "; ".join(", ".join(f"{k} = {v!r}" for k, v in json.loads(s).items()) for s in params)
    stage_rows = "\n".join(
        f'<tr><td>{esc(s.get("notebook", ""))}</td><td>{esc(s.get("status", ""))}</td>'
        f'<td>{esc(s.get("started", ""))}</td><td class="num">{esc(s.get("seconds", ""))}</td></tr>'
        for s in stages)
    stage_table = (f"<h2>Stage times (the latest run of each notebook)</h2>\n<table>\n"
                   f"<tr><th>notebook</th><th>status</th><th>started</th><th>seconds</th></tr>\n"
                   f"{stage_rows}\n</table>") if stages else ""
    total = sum(p.seconds or 0.0 for p in pages)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ccc; padding: .3rem .8rem; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.failed {{ color: #b00; font-weight: bold; }}
</style></head>
<body>
<h1>{esc(title)}</h1>
<p>Executed notebooks of the SLMRec reproducibility book (parameters: {esc(shown) or "the notebooks' defaults"}).
Built {datetime.now().strftime("%Y-%m-%d %H:%M")}; {len(pages)} notebooks, {total:.0f} s of execution in all.</p>
<table>
<tr><th>notebook</th><th>title</th><th>seconds</th><th>status</th></tr>
{rows}
</table>
{stage_table}
</body></html>
"""


def with_nav(body: str, pages: list[Page], i: int) -> str:
    """`body` (a page's HTML) with a line of links at the top: the index, the previous and next page."""
    links = ['<a href="index.html">index</a>']
    if i > 0:
        links.append(f'<a href="{html.escape(pages[i - 1].html)}">&larr; {html.escape(pages[i - 1].title)}</a>')
    if i + 1 < len(pages):
        links.append(f'<a href="{html.escape(pages[i + 1].html)}">{html.escape(pages[i + 1].title)} &rarr;</a>')
    nav = ('<nav style="font-family: system-ui, sans-serif; padding: .5rem 1rem; border-bottom: 1px solid #ccc">'
           + " &middot; ".join(links) + "</nav>")
    start = body.find("<body")
    end = body.find(">", start) + 1 if start >= 0 else 0
    return body[:end] + nav + body[end:]


def build_site(src: Path, out: Path, title: str | None = None) -> Path:
    """Render every executed notebook `src/*.ipynb` into `out/` with an index; returns `out/index.html`."""
    import nbformat
    from nbconvert import HTMLExporter

    src, out = Path(src), Path(out)
    notebooks = sorted(src.glob("*.ipynb")) if src.is_dir() else []
    if not notebooks:
        raise SiteError(f"no executed notebooks in {src}: run `make reproduce PROFILE=<profile>` first (it "
                        "writes build/<profile>/*.ipynb), or give --src a folder of .ipynb files")
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    try:
        read = [(path, nbformat.read(path, as_version=4)) for path in notebooks]
        pages = [_page(nb, path) for path, nb in read]
        for i, ((path, nb), page) in enumerate(zip(read, pages)):
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page.title,
                                                                             "path": str(path.parent)}})
            (tmp / page.html).write_text(with_nav(body, pages, i), encoding="utf-8")
        (tmp / "index.html").write_text(render_index(pages, title or f"slmrec-book: {src.name}",
                                                      _stage_times(src)), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / "index.html"


# ---------------------------------------------------------------------------------------- browser check
def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable: `$SLMREC_CHROMIUM`, else the first of CHROMIUM_NAMES on PATH."""
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if not (shutil.which(given) or Path(given).is_file()):
            raise SiteError(f"${CHROMIUM_ENV}={given} is not an executable; unset it or point it at chromium")
        return shutil.which(given) or given
    return next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)


_PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: (img.getAttribute("src") || "").slice(0, 80), width: img.complete ? img.naturalWidth : 0};
  });
  var links = Array.prototype.map.call(document.links, function (a) { return a.href; });
  var out = document.createElement("pre");
  out.id = "%s";
  out.textContent = JSON.stringify({images: images, links: links});
  document.body.appendChild(out);
});
</script>""" % PROBE_ID


def probe_page(page: Path, chromium: str, timeout: float = 120.0) -> dict:
    """Open `page` in headless Chromium; {"images": [{src, width}], "links": [absolute href]} after load."""
    page = Path(page).resolve()
    if not page.is_file():
        raise SiteError(f"{page} does not exist")
    text = page.read_text(encoding="utf-8")
    cut = text.lower().rfind("</body>")
    probed = text[:cut] + _PROBE + text[cut:] if cut >= 0 else text + _PROBE
    copy = page.with_name(f".probe-{page.name}")  # beside the page, so relative paths resolve the same
    copy.write_text(probed, encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="slmrec-chromium-") as profile_dir:
            cmd = [chromium, "--headless", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile_dir}",
                   "--virtual-time-budget=15000", "--dump-dom", copy.as_uri()]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        copy.unlink(missing_ok=True)
    marker = f'<pre id="{PROBE_ID}">'
    start = done.stdout.find(marker)
    if done.returncode != 0 or start < 0:
        raise SiteError(f"Chromium did not render {page} (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    body = done.stdout[start + len(marker):done.stdout.index("</pre>", start)]
    return json.loads(html.unescape(body))


def check_site(index: Path, chromium: str | None = None) -> list[str]:
    """Problems a reader of the site would meet: images that did not load, linked pages that are missing.

    Opens `index` and every local page it links to; an empty list means every image loaded."""
    return inspect_site(index, chromium)["problems"]


def inspect_site(index: Path, chromium: str | None = None) -> dict:
    """`check_site`'s walk, counted: {"pages": pages opened, "images": images seen, "problems": [...]}."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise SiteError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH and ${CHROMIUM_ENV}); "
                        "install it, e.g. `apt-get install -y chromium`")
    index = Path(index).resolve()
    problems, seen, queue, images = [], set(), [index], 0
    while queue:
        page = queue.pop(0)
        if page in seen:
            continue
        seen.add(page)
        if not page.is_file():
            problems.append(f"{page.name}: linked from the index but missing")
            continue
        found = probe_page(page, chromium)
        images += len(found["images"])
        problems += [f"{page.name}: image {img['src']!r} did not load" for img in found["images"] if img["width"] <= 0]
        if page == index:
            for href in found["links"]:
                url = urlparse(href)
                if url.scheme == "file" and url.path.endswith(".html"):
                    queue.append(Path(unquote(url.path)))
    return {"pages": len(seen), "images": images, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True, help="whose executed notebooks: build/<profile>/ (e.g. cpu, gpu-sports)")
    ap.add_argument("--src", type=Path, default=None, help="folder of executed notebooks (default build/<profile>)")
    ap.add_argument("--out", type=Path, default=None, help="site folder (default build/site/<profile>)")
    ap.add_argument("--check", action="store_true", help="then open it in headless Chromium and check every image")
    args = ap.parse_args(argv)
    src, out = args.src or default_source(args.profile), args.out or default_target(args.profile)
    try:
        index = build_site(src, out, title=f"slmrec-book: profile {args.profile}")
        print(f"site: {index} ({len(list(out.glob('*.html'))) - 1} pages)")
        if args.check:
            seen = inspect_site(index)
            for line in seen["problems"]:
                print(f"problem: {line}", file=sys.stderr)
            if seen["problems"]:
                return 1
            print(f"checked in headless Chromium: {seen['pages']} pages, {seen['images']} images, every one loaded"
                  + ("; no page shows a figure" if not seen["images"] else ""))
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
