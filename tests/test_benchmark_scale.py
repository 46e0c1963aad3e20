"""Smoke test of benchmarks/scale.py: tiny generated sets, report written."""

import importlib
import math

import pytest

from benchmarks.environment import RESULTS, StudyRun, load_rows


@pytest.fixture(scope="module")
def scale():
    return importlib.import_module("benchmarks.scale")


def test_scale_report_tiny(scale, tmp_path):
    # One set: each costs three subprocesses (about 20 s here); the summary over
    # several sets is tested on made-up rows below.
    results = scale.run(["700"], "cpu", min_pairs=2, timed_rows=1000)
    assert list(results) == ["700"]
    for name, r in results.items():
        for estimator in ("plain", "l2rw"):
            assert r[estimator]["peak_mib"] >= 0
            # the clean set (300 rows) is held out of L2RW's training rows only
            assert r[estimator]["rows"] == int(name) - (300 if estimator == "l2rw" else 0)
        assert r["l2rw"]["meta_gradient"] == r["time"]["meta_gradient"] == "ghost"
        timing = r["time"]
        assert timing["pairs"] == 2
        assert all(len(timing["seconds"][e]) == 2 and min(timing["seconds"][e]) > 0
                   for e in ("plain", "l2rw"))
    per_set, bars = scale.summary(results)
    assert list(per_set) == ["700"]
    assert all(s["time_ratio"] > 0 and s["memory_ratio"] >= 0 for s in per_set.values())
    assert bars["flat"] >= 1 and bars["memory"] == max(s["memory_ratio"]
                                                       for s in per_set.values())
    path = scale.report(results, StudyRun("scale", ["test"]), "cpu", tmp_path,
                        timed_rows=1000, min_pairs=2)
    # The rows are written next to the report and rebuild it byte for byte.
    saved = load_rows(path.with_suffix(".json"))
    assert saved["rows"] == results
    assert saved["meta"]["min_pairs"] == 2 and saved["meta"]["timed_rows"] == 1000
    # The record is run_record's, with scale's own machine line, device and date.
    assert list(saved["meta"]) == ["command", "started", "elapsed", "load", "machine",
                                   "versions", "device", "timed_rows", "min_pairs", "date"]
    assert saved["meta"]["command"] == "python -m benchmarks.scale test"
    assert saved["meta"]["machine"].endswith("torch threads")
    rebuilt = scale.main(["--render", str(path.with_suffix(".json")),
                          "--out", str(tmp_path / "again")])
    assert rebuilt.name == "scale.md" and rebuilt.read_text() == path.read_text()


def test_scale_rejects_bad_pairs(scale, tmp_path):
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "700", "--no-kdd", "--min-pairs", "0", "--out", str(tmp_path)])


@pytest.mark.parametrize("plain, l2rw, ratio", [
    # per-pair ratios 2, 2, 3: their median, not the ratio of the medians (3/2)
    ([1.0, 2.0, 1.0], [2.0, 4.0, 3.0], 2.0),
    # an even number of pairs: the mean of the middle two ratios (1, 2, 3, 4)
    ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], 2.5),
])
def test_time_ratio_is_the_median_of_paired_ratios(scale, plain, l2rw, ratio):
    memory = {"rows": 700, "features": 50, "peak_mib": 10.0, "data_mib": 0.1}
    results = {"700": {"plain": memory, "l2rw": dict(memory, rows=400),
                       "time": {"pairs": len(plain),
                                "seconds": {"plain": plain, "l2rw": l2rw}}},
               "kdd_census": {"plain": memory, "l2rw": dict(memory, peak_mib=16.0),
                              "time": {"pairs": 1, "seconds": {"plain": [1.0],
                                                               "l2rw": [9.0]}}}}
    per_set, bars = scale.summary(results)
    assert per_set["700"]["time_ratio"] == pytest.approx(ratio)
    # The flat bar looks at the generated sets only; the memory bar at every set.
    assert bars["flat"] == 1.0 and bars["memory"] == pytest.approx(1.6)
    assert math.isnan(scale.summary({"kdd_census": results["kdd_census"]})[1]["flat"])


def test_peak_memory_is_reset_before_fit(scale):
    # Data preparation that peaks above the fit must not hide the fit's own peak.
    import numpy as np

    if scale._status_mib("VmHWM") is None:
        pytest.skip("no /proc/self/status here")
    big = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, touched
    del big
    inflated = scale._peak_rss_mib()
    base = scale._reset_peak_rss()
    assert scale._peak_rss_mib() >= base - 1
    assert scale._peak_rss_mib() < inflated - 32


def test_data_parallel_part_tiny(scale, tmp_path):
    # 1,000 rows: 3 global batches per epoch, 1 and 2 gloo processes.
    results = scale.run_parallel([2], rows=1000, pairs=1, epochs=1)
    runs = results["runs"]
    assert sorted(runs) == [1, 2] and all(len(rows) == 1 for rows in runs.values())
    one, two = runs[1][0], runs[2][0]
    assert one["steps"] == two["steps"] == 3  # the same global batches
    assert two["all_reduce_bytes"] == 4 * (two["n_params"] + 2)
    assert two["all_gather_bytes"] == 8 * (2 + 2 * 128) * 2
    assert two["all_reduce_s"] > 0 and two["all_gather_s"] > 0
    diff = results["max_weight_diff"]
    assert len(diff["2 processes, float32"]) == 2  # the untimed epoch and the timed one
    assert max(diff["2 processes, float32"]) < 1e-6
    assert max(diff["2 processes, float64"]) < 1e-12
    path = scale.report_parallel(results, StudyRun("scale", ["test"]), "cpu", tmp_path)
    # The rows are written next to the report and rebuild it exactly.
    again = scale.load_parallel(path.with_suffix(".json"))
    assert again["runs"] == runs and again["max_weight_diff"] == diff
    # The machine and versions are the run's, not the renderer's.
    assert again["machine"] == results["machine"] and "torch" in again["versions"]
    # The layout: run_record's record with the setting, the launches as the rows.
    saved = load_rows(path.with_suffix(".json"))
    assert list(saved) == ["meta", "max_weight_diff", "rows"]
    assert list(saved["meta"]) == ["command", "started", "elapsed", "load", "machine",
                                   "versions", "parallel_rows", "pairs", "epochs", "date",
                                   "device"]
    assert saved["meta"]["parallel_rows"] == 1000 and saved["meta"]["device"] == "cpu"
    text = path.read_text()
    rebuilt = scale.main(["--render-parallel", str(path.with_suffix(".json")),
                          "--out", str(tmp_path / "again")])
    assert rebuilt.name == "scale_parallel.md" and rebuilt.read_text() == text
    # The report's scaling table, one row per number of processes, from the rows.
    scaling = scale.parallel_scaling(again)
    assert sorted(scaling) == [1, 2] and scaling[1]["ratio"] == pytest.approx(1.0)
    assert all(r["step_s"] > 0 and r["ratio"] > 0 for r in scaling.values())


@pytest.mark.parametrize("option, name", [("--render", "scale"),
                                          ("--render-parallel", "scale_parallel")])
def test_committed_reports_rebuild_from_their_rows(scale, option, name, tmp_path):
    path = scale.main([option, str(RESULTS / f"{name}.json"), "--out", str(tmp_path)])
    assert path.read_bytes() == (RESULTS / f"{name}.md").read_bytes()


def test_parallel_rows_of_the_flat_layout_still_read(scale):
    """Runs saved before the record was run_record's kept ``runs`` and the setting at
    the top of the JSON: they read as the same results."""
    saved = load_rows(RESULTS / "scale_parallel.json")
    meta = saved["meta"]
    flat = {"runs": saved["rows"], "max_weight_diff": saved["max_weight_diff"],
            "rows": meta["parallel_rows"], "pairs": meta["pairs"], "epochs": meta["epochs"],
            "date": meta["date"], "command": meta["command"], "device": meta["device"]}
    results = scale.parallel_results(flat)
    assert results == scale.parallel_results(saved)
    assert sorted(results["runs"]) == [1, 2] and results["rows"] == 50_000
    assert scale.report_parallel_saved(flat) == (RESULTS / "scale_parallel.md").read_text()
