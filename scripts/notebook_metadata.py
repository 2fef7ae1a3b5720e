"""Write the kernel's ``language_info`` into the committed notebooks.

Run by ``make sync``; checked by tests/test_notebooks.py.

JupyterLab copies the running kernel's ``language_info`` into a notebook's metadata as soon as the kernel starts.
A notebook committed without it therefore shows the unsaved-changes dot the moment it opens, and closing it asks
to save although nothing was edited. With the same ``language_info`` already in the file nothing changes. The
values are ipykernel's for the venv's Python (3.11.7 on this project's machines); on another Python patch
version JupyterLab still updates ``version``.

    .venv/bin/python scripts/notebook_metadata.py notebooks/*.ipynb
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from ipykernel.ipkernel import IPythonKernel


def language_info() -> dict:
    return dict(IPythonKernel.language_info)


def main(paths: list[str]) -> int:
    info = language_info()
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        if nb.metadata.get("language_info") != info:
            nb.metadata["language_info"] = info
            nbformat.write(nb, path)
            print(f"{path}: language_info set (Python {info['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
