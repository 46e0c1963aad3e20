"""The notebooks run: each executed on tiny stand-in data, in a temporary copy.

``SK_L2RW_NOTEBOOK_SMOKE=1`` makes every notebook use scikit-learn's bundled or
generated data and very few epochs, so nothing is downloaded or read from a cache.
The stored notebooks (with the outputs of their real run) are never rewritten.
"""

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Packages a notebook needs beyond the test extra: skip it, rather than fail, without.
NEEDS = {"01_noisy_tabular.ipynb": ["cleanlab"]}
CELL_TIMEOUT_S = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_noisy_tabular.ipynb", "02_class_imbalance.ipynb",
                     "03_regression.ipynb"]


@pytest.mark.parametrize("stored", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_complete_and_small(stored):
    """Stored from a real run: every cell ran, no errors, figures, reviewable size."""
    assert stored.stat().st_size < 300_000
    nb = nbformat.read(stored, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "run notebooks/execute.py"
    outputs = [out for c in code for out in c.outputs]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs)


@pytest.mark.parametrize("stored", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_stand_in_data(stored, tmp_path, monkeypatch):
    for package in NEEDS.get(stored.name, []):
        pytest.importorskip(package)
    before = digest(stored)
    copy = tmp_path / stored.name
    shutil.copyfile(stored, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:  # start from clean outputs, like a fresh run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    monkeypatch.setenv("SK_L2RW_NOTEBOOK_SMOKE", "1")
    # Small models: one thread avoids threads waiting for each other on a busy machine.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # The kernel must be this interpreter, whatever kernel specs the machine has:
    # JUPYTER_PATH comes first in the search for a "python3" kernel.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    errors = [
        f"cell {i} ({cell.source.splitlines()[0][:60]!r}...): {out.get('ename')}: "
        f"{out.get('evalue')}\n" + ANSI.sub("", "\n".join(out.get("traceback", [])[-3:]))
        for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, "\n\n".join(errors)[:6000]
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran)
    # Figures were drawn where the notebook draws them.
    images = [out for c in ran for out in c.outputs if "image/png" in out.get("data", {})]
    if any("plt.subplots" in c.source for c in ran):
        assert images
    assert digest(stored) == before  # the stored notebook is untouched
