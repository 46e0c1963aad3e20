"""Smoke test of benchmarks/speed.py: every part at tiny sizes, report written."""

import importlib
import math
import re

import pytest


@pytest.fixture(scope="module")
def speed():
    return importlib.import_module("benchmarks.speed")


def tiny_config(speed):
    return speed.smoke_config()


def _numbers(line):
    return [float(x.replace(",", "")) for x in re.findall(r"(?<![\w.])\d[\d,]*\.?\d*", line)]


def test_speed_report_tiny(speed, tmp_path, one_thread):
    lines = []
    path = speed.run(tiny_config(speed), tmp_path, device="cpu",
                     command="python -m benchmarks.speed --tiny", chart=False,
                     log=lines.append)
    assert path == tmp_path / "speed.md"
    text = path.read_text()
    for header in ("## 1. Time per training step", "## 2. Whole `fit` wall time",
                   "## 3. Peak memory of one training step", "## Bars",
                   "| Model | batch / clean batch | Computation | median ms/step",
                   "| Estimator | median s/fit", "| Computation | peak beyond baseline",
                   "auto vs reference speedup", "Tensor (aten) operations per step"):
        assert header in text
    assert "torch threads" in text and "Versions: python" in text
    assert not (tmp_path / "speed.png").exists()

    # Every row of the three result tables holds finite positive numbers.
    rows = [l for l in text.splitlines()
            if l.startswith("| ") and not l.startswith("| Model")
            and not l.startswith("| Estimator") and not l.startswith("| Computation")
            and not l.startswith("| Bar")]
    bars = [l for l in rows if l.endswith("PASS |") or l.endswith("FAIL |")]
    rows = [l for l in rows if l not in bars]
    step_rows = [l for l in rows if "MLP tiny" in l or "LeNet" in l]
    # per case: a row per variant and port, a speed-up row, a row against the ports
    assert len(step_rows) == 2 * (len(speed.STEP_VARIANTS) + 2)
    assert len(speed.STEP_VARIANTS) == len(speed.VARIANTS) + 3
    fit_rows = [l for l in rows if "Classifier |" in l or "(compile=True) |" in l]
    assert len(fit_rows) == 3
    mem_rows = [l for l in rows if l.split("|")[1].strip().split(" ")[0]
                in speed.VARIANTS and "MiB" not in l]
    assert len(mem_rows) == len(speed.VARIANTS)
    for line in step_rows + fit_rows + mem_rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        # bracketed: a port's weight difference from reference, which may be 0
        values = [v for c in cells[1:] for v in _numbers(re.sub(r"\([^)]*\)", "", c))]
        assert values, line
        assert all(math.isfinite(v) and v > 0 for v in values), line
    # MLP ratio, 2 x 2 against the higher and functional-copy ports, 2 speedups,
    # 2 fit and 1 compiled fit, memory
    assert len(bars) == 1 + 4 + 2 + 3 + 1


def test_cpu_peak_bytes_is_exact(speed):
    assert speed.calibrate_cpu_peak() == 8_000_000


def test_main_rejects_bad_repeats(speed, tmp_path):
    with pytest.raises(SystemExit):
        speed.main(["--repeats", "0", "--out", str(tmp_path)])


def test_busy_repeats_are_left_out(speed):
    assert speed._quiet_repeats([0.0, 0.5, 0.01, float("nan")]) == [0, 2, 3]
    assert speed._quiet_repeats([0.5, 0.9]) == [0, 1]  # none quiet: keep all
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


def test_ratios_are_paired_within_repeats(speed):
    # A slow spell in repeats 2-3 hits both numbers of those repeats; the
    # ratio of the medians (30 / 10 = 3) would mix repeats, the paired one not.
    assert speed._ratio([2.0, 40.0, 30.0], [1.0, 20.0, 10.0]) == 2.0


def test_ops_per_step_counts_every_tensor_operation(speed):
    import torch

    with speed.CountOps() as mode:
        torch.ones(3).add(1).sum()
    assert mode.count == 3


def test_rows_rebuild_the_report(speed, tmp_path, one_thread):
    path = speed.run(tiny_config(speed), tmp_path, device="cpu", command="test",
                     chart=False, parts=("steps", "fit"), log=lambda m: None)
    rows = speed.load_rows(path.with_suffix(".json"))
    assert speed.render(rows) == path.read_text()
    # Asserted on the rows themselves: every timed variant and port of every case.
    for res in rows["steps"]:
        assert sorted(res["ms"]) == sorted(speed.STEP_VARIANTS)
        assert all(len(ms) == len(res["kept"]) and min(ms) > 0
                   for ms in res["ms"].values())
        assert set(res["port_diff"]) == set(speed.PORTS)
        assert max(res["port_diff"].values()) < 1e-6
    assert sorted(rows["fit"]["s"]) == sorted(["NeuralNetClassifier", "L2RWClassifier",
                                               speed.COMPILED])
    assert rows["fit"]["compiled_fallbacks"] == []  # compiled and checked, no fallback
    ops = rows["fit"]["ops_per_step"]
    assert set(ops) == {"NeuralNetClassifier", "L2RWClassifier"}
    assert min(ops.values()) > 10
