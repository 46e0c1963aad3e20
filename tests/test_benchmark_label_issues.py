"""Smoke test of benchmarks/label_issues.py: the --quick run on digits (bundled)."""

import importlib
import re

import pytest

from conftest import refuse_downloads

pytest.importorskip("cleanlab")


@pytest.fixture(scope="module")
def label_issues():
    return importlib.import_module("benchmarks.label_issues")


@pytest.fixture
def no_download(label_issues, monkeypatch, tmp_path):

    refuse_downloads(monkeypatch, tmp_path / "empty-cache", importlib.import_module("benchmarks.datasets"))


def test_quick_run_on_digits(label_issues, tmp_path, one_thread, no_download):
    results = label_issues.main(["--quick", "--datasets", "digits", "--out", str(tmp_path)])
    assert set(results) == {("digits", "background"), ("digits", "pair")}
    for summary in results.values():
        for key in ("l2rw_auroc", "share_auroc", "cl_auroc"):
            assert 0.0 <= summary[key][0] <= 1.0
        # flipped labels on digits are easy to find: far better than chance
        assert summary["share_auroc"][0] > 0.8
    text = (tmp_path / "label_issues.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| digits |")]
    assert len(rows) == 4  # two noises, in the AUROC and the precision tables
    assert re.search(r"Goal met in \d+ of 2 cases with the default score", text)
    assert "On the held-out sets alone" not in text  # none of them ran
