"""Smoke test of benchmarks/clean_loss_warning.py (digits, bundled) and its rule replay."""

import importlib
import re

import pytest

from conftest import refuse_downloads


@pytest.fixture(scope="module")
def study():
    return importlib.import_module("benchmarks.clean_loss_warning")


@pytest.fixture
def no_download(study, monkeypatch, tmp_path):
    refuse_downloads(monkeypatch, tmp_path / "empty-cache",
                     study.q.bench_data)


def test_rules_replay_on_a_curve(study):
    estimator, ratio = study.rules().values()
    curve = [0.5, 0.01, 0.2, 0.6, 0.9]
    # 0.2 is 20x the best but below epoch 1: only the ratio fires there.
    assert study.first_alarm(ratio, curve) == 3
    assert study.first_alarm(estimator, curve) == 4
    assert study.first_alarm(estimator, [0.7, 0.004, 0.05, 0.3]) is None
    assert study.first_alarm(estimator, [0.5]) is None


def test_smoke_run_writes_report(study, tmp_path, one_thread, no_download):
    assert study.main(["--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "clean_loss_warning.md").read_text()
    for header in ("## Summary", "## Every fit on which a rule fires", "--smoke` run",
                   "Versions: python", "clean_loss_alarm"):
        assert header in text, header
    totals = re.findall(r"^\| all \((\d+)\) \| .*? \| (\d+) of (\d+) \| (\d+) of (\d+) \|$",
                        text, flags=re.M)
    assert len(totals) == 2  # one line per rule
    for fits, caught, failed, false, good in map(lambda t: map(int, t), totals):
        assert failed + good == fits >= 3
        assert caught <= failed and false <= good
