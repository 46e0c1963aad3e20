"""Smoke test of benchmarks/imbalance_steps.py (digits, bundled; nothing downloaded)."""

import importlib
import json

import pytest

from benchmarks.environment import load_rows
from conftest import refuse_downloads


@pytest.fixture(scope="module")
def study():
    return importlib.import_module("benchmarks.imbalance_steps")


@pytest.fixture
def no_download(study, monkeypatch, tmp_path):
    refuse_downloads(monkeypatch, tmp_path / "empty-cache",
                     importlib.import_module("benchmarks.datasets"))


@pytest.mark.parametrize("steps, n_rows, batch, epochs", [
    (800, 5000, 128, 20),    # 40 steps per epoch (the last batch is short)
    (8000, 5000, 128, 200),
    (801, 5000, 128, 21),    # whole epochs: at least the steps asked for
    (10, 50, 128, 10),       # one step per epoch
])
def test_epochs_for(study, steps, n_rows, batch, epochs):
    assert study.epochs_for(steps, n_rows, batch) == epochs


def test_smoke_run_writes_report(study, tmp_path, one_thread, no_download):
    returned = study.main(["--smoke", "--seeds", "0,1", "--out", str(tmp_path)])
    text = (tmp_path / "imbalance_steps.md").read_text()
    for header in ("--smoke` run", "Command: `python -m benchmarks.imbalance_steps --smoke",
                   "Versions: python", "| optimizer steps | epochs |"):
        assert header in text, header
    # The numbers, asserted on the rows written next to the report.
    saved = load_rows(tmp_path / "imbalance_steps.json")
    rows, about = saved["rows"], saved["about"]
    assert json.loads(json.dumps(returned)) == rows  # main returns the rows it wrote
    assert sorted((r["steps"], r["seed"]) for r in rows) == [(20, 0), (20, 1), (60, 0),
                                                             (60, 1)]
    assert about["quality_setting"] and about["n_train"] == 120
    for r in rows:
        assert r["epochs"] == study.epochs_for(r["steps"], about["n_train"],
                                               about["batch_size"])
        assert all(0 <= r[m] <= 1 for m, _ in study.METHODS)
        assert isinstance(r["warned"], bool) and r["clean_loss_last"] >= 0
    # The report is rebuilt from the rows byte for byte.
    rebuilt = study.main(["--render", str(tmp_path / "imbalance_steps.json"),
                          "--out", str(tmp_path / "again")])
    assert rebuilt == tmp_path / "again" / "imbalance_steps.md"
    assert rebuilt.read_text() == text


def test_rejects_non_positive_steps(study, capsys):
    with pytest.raises(SystemExit):
        study.main(["--smoke", "--steps", "0"])
    assert "--steps must be positive" in capsys.readouterr().err


def test_paper_optimizer_writes_its_own_report(study, tmp_path, one_thread, no_download):
    returned = study.main(["--smoke", "--optimizer", "sgd", "--steps", "4",
                           "--out", str(tmp_path)])
    assert not (tmp_path / "imbalance_steps.md").exists()  # the Adam report is kept
    assert not (tmp_path / "imbalance_steps.json").exists()
    text = (tmp_path / "imbalance_steps_sgd.md").read_text()
    assert "the paper's SGD with momentum 0.9 (lr=0.001, batch 100)" in text
    saved = load_rows(tmp_path / "imbalance_steps_sgd.json")
    assert (saved["about"]["lr"], saved["about"]["batch_size"]) == (1e-3, 100)
    # 120 rows in batches of 100: 2 steps per epoch, so 4 steps take 2 epochs.
    assert [(r["steps"], r["epochs"]) for r in saved["rows"]] == [(4, 2)]
    assert json.loads(json.dumps(returned)) == saved["rows"]
    # --render names the report after the JSON it reads: the SGD report again.
    rebuilt = study.main(["--render", str(tmp_path / "imbalance_steps_sgd.json"),
                          "--out", str(tmp_path / "again")])
    assert rebuilt == tmp_path / "again" / "imbalance_steps_sgd.md"
    assert rebuilt.read_text() == text
