"""Smoke test of benchmarks/speed.py and the parts it runs
(benchmarks/common/speed_run.py): every part at tiny sizes, report written."""

import importlib
import math

import pytest

from benchmarks.common.timing import quiet_repeats, smoke_config


@pytest.fixture(scope="module")
def speed():
    return importlib.import_module("benchmarks.common.speed_run")


def tiny_config(speed):
    return smoke_config()


def test_speed_report_tiny(speed, tmp_path, one_thread):
    lines = []
    path = speed.run(tiny_config(speed), tmp_path, device="cpu",
                     command="python -m benchmarks.speed --tiny", chart=False,
                     log=lines.append)
    assert path == tmp_path / "speed.md"
    assert not (tmp_path / "speed.png").exists()

    # The page is its rows: the three parts ran, with the machine and versions.
    saved = speed.load_run(path.with_suffix(".json"))
    assert speed.render(saved) == path.read_text()
    rows = saved["rows"]
    assert all(rows[part] for part in ("steps", "fit", "mem"))
    assert saved["info"]["threads"] >= 1 and saved["meta"]["versions"].startswith("python")
    assert set(rows["fit"]["ops_per_step"]) == {"NeuralNetClassifier", "L2RWClassifier"}
    positive = lambda values: all(math.isfinite(v) and v > 0 for v in values)  # noqa: E731
    assert [r["case"].label for r in rows["steps"]] == ["MLP tiny", "LeNet"]
    for res in rows["steps"]:
        assert sorted(res["ms"]) == sorted(speed.STEP_VARIANTS)
        assert all(len(ms) == len(res["kept"]) and positive(ms) for ms in res["ms"].values())
    assert len(speed.STEP_VARIANTS) == len(speed.VARIANTS) + 3
    fit = rows["fit"]
    assert sorted(fit["s"]) == sorted(["NeuralNetClassifier", "L2RWClassifier",
                                       speed.COMPILED, speed.SMALL_CLEAN])
    assert all(len(s) == len(fit["kept"]) and positive(s) for s in fit["s"].values())
    assert fit["compiled_fallbacks"] == []  # compiled, checked, no fallback
    assert sorted(rows["mem"]["peak"]) == sorted(speed.VARIANTS)
    assert all(positive(p) for p in rows["mem"]["peak"].values())
    bars = speed.evaluate_bars(rows["steps"], fit, rows["mem"])
    # MLP ratio, 2 x 2 against the higher and functional-copy ports, 2 speedups,
    # 2 fit and 1 compiled fit, memory; each a row of the page's bar table.
    assert len(bars) == 1 + 4 + 2 + 3 + 1
    assert len({bar for bar, *_ in bars}) == len(bars)
    for bar, measured, threshold, passed in bars:
        assert measured.endswith("x") and math.isfinite(float(measured[:-1])), bar
        assert threshold[:2] in ("<=", ">=") and passed in (True, False), bar


def test_cpu_peak_bytes_is_exact(speed):
    assert speed.calibrate_cpu_peak() == 8_000_000


def test_main_rejects_bad_repeats(tmp_path):
    from benchmarks.speed import main

    with pytest.raises(SystemExit):
        main(["--repeats", "0", "--out", str(tmp_path)])


def test_busy_repeats_are_left_out(speed):
    assert quiet_repeats([0.0, 0.5, 0.01, float("nan")]) == [0, 2, 3]
    assert quiet_repeats([0.5, 0.9]) == [0, 1]  # none quiet: keep all
    assert "2 of 3 repeats used" in speed._repeats_note([0.0, 0.5, 0.0], [0, 2])


def test_busy_repeats_are_made_up_for(speed):
    busy = []
    for r in speed._repeat_indices(3, busy, extra=2):
        busy.append(0.5 if r in (0, 1) else 0.0)
    assert len(busy) == 5  # 2 busy, then made up for (at most 2 extra)
    busy = []
    for r in speed._repeat_indices(3, busy, extra=2):
        busy.append(0.0)
    assert len(busy) == 3
    busy = []
    for r in speed._repeat_indices(2, busy, extra=1):
        busy.append(0.9)
    assert len(busy) == 3
    busy = []
    for r in speed._repeat_indices(2, busy, extra=5, deadline=0.0):
        busy.append(0.9)
    assert len(busy) == 2  # past the deadline: no extra repeats


def test_ops_per_step_counts_every_tensor_operation(speed):
    import torch

    with speed.CountOps() as mode:
        torch.ones(3).add(1).sum()
    assert mode.count == 3


def test_rows_rebuild_the_report(speed, tmp_path, one_thread):
    path = speed.run(tiny_config(speed), tmp_path, device="cpu", command="test",
                     chart=False, parts=("steps", "fit"), log=lambda m: None)
    saved = speed.load_run(path.with_suffix(".json"))
    assert speed.render(saved) == path.read_text()
    rows = saved["rows"]
    # Asserted on the rows themselves: every timed variant and port of every case.
    for res in rows["steps"]:
        assert sorted(res["ms"]) == sorted(speed.STEP_VARIANTS)
        assert all(len(ms) == len(res["kept"]) and min(ms) > 0
                   for ms in res["ms"].values())
        assert set(res["port_diff"]) == set(speed.PORTS)
        assert max(res["port_diff"].values()) < 1e-6
    ops = rows["fit"]["ops_per_step"]
    assert set(ops) == {"NeuralNetClassifier", "L2RWClassifier"}
    assert min(ops.values()) > 10


def test_saved_run_is_in_the_layout_of_every_study(speed, tmp_path, one_thread):
    # StudyRun's layout: the parts as rows, the configuration and device beside
    # them, the run's record (run_record) as meta; the JSON rebuilds the report.
    from benchmarks.environment import load_rows

    path = speed.run(tiny_config(speed), tmp_path, device="cpu", command="test",
                     chart=False, parts=("memory",), log=lambda m: None)
    saved = load_rows(path.with_suffix(".json"))
    assert set(saved) == {"rows", "config", "info", "meta"}
    assert set(saved["rows"]) == {"steps", "fit", "mem"}
    assert saved["rows"]["steps"] is None and saved["rows"]["fit"] is None
    assert list(saved["meta"]) == ["command", "started", "elapsed", "load", "machine",
                                   "versions", "load_start"]
    assert saved["meta"]["command"] == "test" and saved["info"]["device"] == "cpu"
    assert speed.render(saved) == path.read_text()


def test_committed_reports_are_rebuilt_from_their_rows(tmp_path):
    from benchmarks.environment import RESULTS
    from benchmarks.speed import main

    for name in ("speed", "speed_cuda"):
        rebuilt = main(["--render", str(RESULTS / f"{name}.json"), "--out", str(tmp_path)])
        assert rebuilt == tmp_path / f"{name}.md"
        assert rebuilt.read_bytes() == (RESULTS / f"{name}.md").read_bytes()
    assert not (tmp_path / "speed.png").exists()  # --render rebuilds the report alone
