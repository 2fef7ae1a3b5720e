"""`make lab`: a student's Run All leaves the checkout clean, their edits show, the .py opens as a notebook.

A real JupyterLab server from the venv (the `jupyter lab` of `make lab`, with the configuration files that `make setup`
installs: scripts/jupyter_server_config.py and scripts/jupyterlab_overrides.json) serves a git-tracked temporary copy
of notebooks/ on a free localhost port with token auth. Notebooks are saved through the contents REST API,
`PUT /api/contents/<path>`, the request JupyterLab's autosave and Ctrl+S send, carrying what a Run All leaves in the
model: outputs (a figure, text, tqdm's widget view), execution counts, run metadata and the saved widget state.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from processes import stop_process
from test_notebooks import NOTEBOOK_DIR, SOURCES
from test_notebooks import test_pair_in_sync_and_without_outputs as check_pair_in_sync_and_without_outputs

ROOT = Path(__file__).resolve().parents[1]
SERVER_CONFIG = ROOT / "scripts" / "jupyter_server_config.py"
LAB_OVERRIDES = ROOT / "scripts" / "jupyterlab_overrides.json"
TOKEN = "proxflow-edu-test-token"
STARTUP_TIMEOUT_S = 60


class Lab:
    def __init__(self, url: str, root: Path, log: Path) -> None:
        self.url, self.root, self.log = url, root, log

    def request(self, method: str, api_path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{api_path}", data=data, method=method,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.load(response)

    def get_notebook(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/contents/{name}?type=notebook&content=1")["content"]

    def save_notebook(self, name: str, content: dict[str, Any]) -> None:
        """What JupyterLab's autosave sends (its document context saves the whole model, type notebook, as JSON)."""
        self.request("PUT", f"/api/contents/{name}", {"type": "notebook", "format": "json", "content": content})

    def git_status(self) -> str:
        return subprocess.run(["git", "status", "--porcelain"], cwd=self.root, check=True, capture_output=True,
                              text=True).stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("git") is None:
        pytest.skip("git not found")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for source in SOURCES:
        for path in (source, source.with_suffix(".ipynb")):
            shutil.copy2(path, root / path.name)
    shutil.copy2(ROOT / ".gitignore", root / ".gitignore")  # .ipynb_checkpoints/, as in the repository
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "the committed notebooks")
    settings = base / "lab-settings"  # stands in for .venv/share/jupyter/lab/settings
    settings.mkdir()
    shutil.copy2(LAB_OVERRIDES, settings / "overrides.json")
    # no user config, runtime or data files of this machine's account: only the venv's and the two files above
    # (`--config` loads that file in place of every jupyter_server_config.py, the venv's installed copy included)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_DATA_DIR": str(base / "data"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    env.pop("JUPYTER_CONFIG_PATH", None)
    port = _free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
               f"--config={SERVER_CONFIG}", f"--LabApp.app_settings_dir={settings}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", root, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                lab.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start (exit {server.poll()}):\n{log.read_text()}")
                time.sleep(0.2)
        yield lab
    finally:
        stop_process(server, timeout=15)


def _after_run_all(content: dict[str, Any]) -> dict[str, Any]:
    """The notebook model as JupyterLab holds it after Run All (with "record timing" and ipywidgets' "save widget
    state" on, and an output scrolled)."""
    nb = json.loads(json.dumps(content))
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        count += 1
        cell["execution_count"] = count
        cell["metadata"].update(execution={"iopub.execute_input": "2026-01-01T00:00:00.000Z"}, scrolled=True)
        cell["outputs"] = [
            {"output_type": "stream", "name": "stdout", "text": "W2 = 0.361\n"},
            {"output_type": "display_data", "metadata": {},
             "data": {"application/vnd.jupyter.widget-view+json": {"model_id": f"tqdm{count}", "version_major": 2,
                                                                   "version_minor": 0},
                      "text/plain": "100%|##########| 1500/1500"}},
            {"output_type": "execute_result", "execution_count": count, "metadata": {},
             "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}},
        ]
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"tqdm1": {"model_name": "HBoxModel", "state": {}}}, "version_major": 2, "version_minor": 0}}
    return nb


def _server_errors(lab: Lab) -> list[str]:
    return [line for line in lab.log.read_text().splitlines() if "[E " in line or "Traceback" in line]


@pytest.mark.parametrize("opened_as", ["ipynb", "py"])
def test_autosave_after_run_all_leaves_the_checkout_clean(lab: Lab, opened_as: str) -> None:
    """Every notebook, opened as its .ipynb or (double-click) as its .py, autosaved after Run All: no change."""
    for source in SOURCES:
        name = f"{source.stem}.{opened_as}"
        lab.save_notebook(name, _after_run_all(lab.get_notebook(name)))
    assert lab.git_status() == "", f"saving after Run All changed the checkout:\n{lab.git_status()}"
    for source in SOURCES:  # the test `make test` runs, on the saved files
        check_pair_in_sync_and_without_outputs(lab.root / source.name)
    assert not _server_errors(lab), "\n".join(_server_errors(lab))


def test_a_students_edit_is_kept_and_shows(lab: Lab) -> None:
    source = SOURCES[0]
    name = f"{source.stem}.ipynb"
    nb = _after_run_all(lab.get_notebook(name))
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])]
    code[0]["source"] += "\nprint('my own experiment')"
    lab.save_notebook(name, nb)
    try:
        saved = nbformat.read(lab.root / name, as_version=4)
        assert "print('my own experiment')" in (lab.root / source.name).read_text(), "the paired .py lost the edit"
        assert [c.source for c in saved.cells] == [c["source"] for c in nb["cells"]], "a cell source was not kept"
        assert not [c for c in saved.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert "widgets" not in saved.metadata
        committed = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert saved.metadata["language_info"] == committed.metadata["language_info"]
        assert [c.metadata.get("tags") for c in saved.cells] == [c.metadata.get("tags") for c in committed.cells]
        assert sorted(lab.git_status().splitlines()) == [f" M {source.stem}.ipynb", f" M {source.name}"]
    finally:
        _git(lab.root, "checkout", "--", ".")
    assert not _server_errors(lab), "\n".join(_server_errors(lab))


def test_a_notebook_of_the_students_own_keeps_its_outputs(lab: Lab) -> None:
    """Only the jupytext-paired course notebooks are stripped (scripts/jupyter_server_config.py)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=1, outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)])])
    lab.save_notebook("scratch.ipynb", nb)
    try:
        assert nbformat.read(lab.root / "scratch.ipynb", as_version=4).cells[0].outputs
    finally:
        (lab.root / "scratch.ipynb").unlink()


def test_a_py_opens_as_a_notebook_by_default(lab: Lab) -> None:
    """The default viewer of a .py (double-click) is jupytext's notebook, from the settings JupyterLab loads."""
    plugin = lab.request("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = plugin["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook", f"defaultViewers: {viewers}"
