"""Smoke test of benchmarks/clean_loss_warning.py (digits, bundled) and its rule replay."""

import importlib
import json

import pytest

from benchmarks.environment import load_rows
from conftest import refuse_downloads


@pytest.fixture(scope="module")
def study():
    return importlib.import_module("benchmarks.clean_loss_warning")


@pytest.fixture
def no_download(study, monkeypatch, tmp_path):
    refuse_downloads(monkeypatch, tmp_path / "empty-cache",
                     importlib.import_module("benchmarks.datasets"))


def test_rules_replay_on_a_curve(study):
    estimator, ratio = study.rules().values()
    curve = [0.5, 0.01, 0.2, 0.6, 0.9]
    # 0.2 is 20x the best but below epoch 1: only the ratio fires there.
    assert study.first_alarm(ratio, curve) == 3
    assert study.first_alarm(estimator, curve) == 4
    assert study.first_alarm(estimator, [0.7, 0.004, 0.05, 0.3]) is None
    assert study.first_alarm(estimator, [0.5]) is None


def test_smoke_run_writes_report(study, tmp_path, one_thread, no_download):
    returned = study.main(["--smoke", "--out", str(tmp_path)])
    text = (tmp_path / "clean_loss_warning.md").read_text()
    for header in ("## Summary", "## Every fit on which a rule fires", "--smoke` run",
                   "Versions: python", "clean_loss_alarm"):
        assert header in text, header
    # The numbers, asserted on the rows written next to the report.
    saved = load_rows(tmp_path / "clean_loss_warning.json")
    assert saved["meta"]["smoke"] and "--smoke" in saved["meta"]["command"]
    rows = saved["rows"]
    assert json.loads(json.dumps(returned)) == rows  # main returns the rows it wrote
    assert len(rows) >= 3 and {r["group"][0] for r in rows} == {"collapse", "4-vs-9 mlp"}
    for r in rows:
        assert r["curve"] and set(r["alarms"]) == set(study.rules())
        assert r["failed"] == (r["error"] is not None
                               or r["bal_acc"] < r["best_of_group"] - study.FAILED_POINTS)
        for name, rule in study.rules().items():
            assert r["alarms"][name] == study.first_alarm(rule, r["curve"])
    # The report is rebuilt from the rows byte for byte.
    rebuilt = study.main(["--render", str(tmp_path / "clean_loss_warning.json"),
                          "--out", str(tmp_path / "again")])
    assert rebuilt == tmp_path / "again" / "clean_loss_warning.md"
    assert rebuilt.read_text() == text
