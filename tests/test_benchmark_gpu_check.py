"""benchmarks/gpu_check.py: refuses to run without CUDA; --dry-run runs every part on
the CPU and writes the report and its rows."""

import json

import pytest
import torch

from benchmarks import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_fails(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_dry_run_writes_every_part(tmp_path):
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = [r for r in saved["rows"] if r["part"] == "step"]
    fits = [r for r in saved["rows"] if r["part"] == "fit"]
    assert {r["computation"] for r in steps} == {"reference", "jvp", "ghost"}
    assert {r["case"] for r in fits} == set(gpu_check.FIT_CASES)
    # CPU against CPU: the same code gives the same numbers.
    assert all(max(r["meta"], r["weights"], r["grads"]) == 0 for r in steps)
    assert all(r["weights"] == 0 and r["sync_error"] is None for r in fits)
    text = (tmp_path / "gpu_check.md").read_text()
    assert "--dry-run" in text and (tmp_path / "speed.md").exists()
    # --render rebuilds the same report from the rows.
    again = tmp_path / "again"
    gpu_check.main(["--render", str(tmp_path / "gpu_check.json"), "--out", str(again)])
    assert (again / "gpu_check.md").read_text() == text


def test_a_failing_case_is_a_row_and_the_rest_is_measured(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("planted failure\nsecond line")

    monkeypatch.setitem(gpu_check.STEPS, "jvp", broken)
    monkeypatch.setattr(gpu_check, "speed_run", broken)
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 1
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = [r for r in saved["rows"] if r["part"] == "step"]
    failed = [r for r in steps if "error" in r]
    assert {r["computation"] for r in failed} == {"jvp"}
    assert all(r["error"] == "RuntimeError: planted failure second line" for r in failed)
    assert all(r["meta"] == 0 for r in steps if "error" not in r)
    assert saved["speed_error"] == "RuntimeError: planted failure second line"
    text = (tmp_path / "gpu_check.md").read_text()
    assert "**error**: `RuntimeError: planted failure second line`" in text
    assert "The speed part failed" in text
