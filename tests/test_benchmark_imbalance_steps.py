"""Smoke test of benchmarks/imbalance_steps.py (digits, bundled; nothing downloaded)."""

import importlib
import re

import pytest

from conftest import refuse_downloads


@pytest.fixture(scope="module")
def study():
    return importlib.import_module("benchmarks.imbalance_steps")


@pytest.fixture
def no_download(study, monkeypatch, tmp_path):
    refuse_downloads(monkeypatch, tmp_path / "empty-cache",
                     study.q.bench_data)


@pytest.mark.parametrize("steps, n_rows, batch, epochs", [
    (800, 5000, 128, 20),    # 40 steps per epoch (the last batch is short)
    (8000, 5000, 128, 200),
    (801, 5000, 128, 21),    # whole epochs: at least the steps asked for
    (10, 50, 128, 10),       # one step per epoch
])
def test_epochs_for(study, steps, n_rows, batch, epochs):
    assert study.epochs_for(steps, n_rows, batch) == epochs


def test_smoke_run_writes_report(study, tmp_path, one_thread, no_download):
    assert study.main(["--smoke", "--seeds", "0,1", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "imbalance_steps.md").read_text()
    for header in ("--smoke` run", "Command: `python -m benchmarks.imbalance_steps --smoke",
                   "Versions: python", "| optimizer steps | epochs |"):
        assert header in text, header
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (.*) \|$", text, flags=re.M)
    assert [int(r[0]) for r in rows] == [20, 60]  # one line per step count, in order
    for steps, epochs, rest in rows:
        cells = [c.strip() for c in rest.split("|")]
        means = [float(c.split(" ± ")[0]) for c in cells[:3]]
        assert all(0 <= v <= 100 for v in means)
        per_seed = [float(v) for v in cells[4].split(",")]
        assert len(per_seed) == 2  # seeds 0 and 1
        assert float(cells[3]) == pytest.approx(means[1] - means[2], abs=0.11)
    assert re.search(r"warning fired in \d+ of 4 L2RW fits", text)


def test_rejects_non_positive_steps(study, capsys):
    with pytest.raises(SystemExit):
        study.main(["--smoke", "--steps", "0"])
    assert "--steps must be positive" in capsys.readouterr().err


def test_paper_optimizer_writes_its_own_report(study, tmp_path, one_thread, no_download):
    assert study.main(["--smoke", "--optimizer", "sgd", "--steps", "4",
                       "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "imbalance_steps.md").exists()  # the Adam report is kept
    text = (tmp_path / "imbalance_steps_sgd.md").read_text()
    assert "the paper's SGD with momentum 0.9 (lr=0.001, batch 100)" in text
    # 120 rows in batches of 100: 2 steps per epoch, so 4 steps take 2 epochs.
    assert re.search(r"^\| 4 \| 2 \| ", text, flags=re.M)
