"""Smoke test of benchmarks/label_issues.py: the --quick run on digits (bundled)."""

import importlib

import pytest

from benchmarks.environment import load_rows
from conftest import refuse_downloads

pytest.importorskip("cleanlab")


@pytest.fixture(scope="module")
def label_issues():
    return importlib.import_module("benchmarks.label_issues")


@pytest.fixture
def no_download(label_issues, monkeypatch, tmp_path):

    refuse_downloads(monkeypatch, tmp_path / "empty-cache", importlib.import_module("benchmarks.datasets"))


def test_quick_run_on_digits(label_issues, tmp_path, one_thread, no_download):
    run_rows = label_issues.main(["--quick", "--datasets", "digits", "--out", str(tmp_path)])
    results = label_issues.summaries(run_rows)
    assert set(results) == {("digits", "background"), ("digits", "pair")}
    for summary in results.values():
        for key in ("l2rw_auroc", "share_auroc", "cl_auroc"):
            assert 0.0 <= summary[key][0] <= 1.0
        # flipped labels on digits are easy to find: far better than chance
        assert summary["share_auroc"][0] > 0.8
    # The numbers, asserted on the rows written next to the report: one per noise
    # and seed; precisions at k and recalls are shares.
    saved = load_rows(tmp_path / "label_issues.json")
    rows, config = saved["rows"], saved["config"]
    assert [(r["dataset"], r["noise"], r["seed"]) for r in rows] == [
        ("digits", "background", 0), ("digits", "pair", 0)]
    assert config == dict(datasets=["digits"], seeds=[0], max_rows=2000, epochs=10,
                          threads=1)
    for r in rows:
        assert 0 < r["n_flipped"] < r["n"] and r["n_clean"] == 100
        for key in ("l2rw", "share", "cl"):
            assert 0 <= r[f"{key}_pk"] <= 1 and 0 <= r[f"{key}_rec"] <= 1
            assert r[f"{key}_flag"] <= r["n"]
        assert r["l2rw_time"] > 0 and r["cl_time"] > 0
    assert rows == run_rows and label_issues.summaries(rows) == results
    # The report is rebuilt from the rows byte for byte.
    text = (tmp_path / "label_issues.md").read_text()
    again = tmp_path / "again"
    assert label_issues.main(["--render", str(tmp_path / "label_issues.json"),
                              "--out", str(again)]) == again / "label_issues.md"
    assert (again / "label_issues.md").read_text() == text
    # and so is the chart, when matplotlib draws it
    if (tmp_path / "label_issues.png").exists():
        assert (again / "label_issues.png").read_bytes() == (
            tmp_path / "label_issues.png").read_bytes()
    assert "On the held-out sets alone" not in text  # none of them ran
