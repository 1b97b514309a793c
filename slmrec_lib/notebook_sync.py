"""Keep each notebook in step with its jupytext percent script (the reviewed source).

    python -m slmrec_lib.notebook_sync --check notebooks   # fails if a pair differs or has outputs
    python -m slmrec_lib.notebook_sync --write notebooks   # rewrites each .ipynb from its .py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat


def _cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(sorted(c.metadata.get("tags", [])))) for c in nb.cells]


def problems(folder: Path) -> list[str]:
    """What is out of step in `folder`: a missing twin, differing cells, stored outputs."""
    out = []
    scripts = sorted(folder.glob("[0-9][0-9]_*.py"))
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    for nb_path in notebooks:
        if not nb_path.with_suffix(".py").exists():
            out.append(f"{nb_path}: no jupytext twin {nb_path.with_suffix('.py').name}")
    for py in scripts:
        nb_path = py.with_suffix(".ipynb")
        if not nb_path.exists():
            out.append(f"{py}: no notebook {nb_path.name}; run `make sync-notebooks`")
            continue
        nb = nbformat.read(nb_path, as_version=4)
        if _cells(jupytext.read(py)) != _cells(nb):
            out.append(f"{nb_path} differs from {py.name}; edit the .py and run `make sync-notebooks`")
        if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            out.append(f"{nb_path} is stored with outputs; run `make sync-notebooks`")
        if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
            out.append(f"{nb_path} has no cell tagged 'parameters' (papermill needs one)")
    return out


def write(folder: Path) -> None:
    for py in sorted(folder.glob("[0-9][0-9]_*.py")):
        nb = jupytext.read(py)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        for i, cell in enumerate(nb.cells):  # stable ids: rewriting an unchanged notebook changes nothing
            cell["id"] = f"cell-{i:02d}"
        jupytext.write(nb, py.with_suffix(".ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--write", action="store_true")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.write:
        write(args.folder)
    found = problems(args.folder)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
