"""benchmarks/categorical.py and benchmarks/sparse_memory.py: their --smoke runs
(generated data, no download), asserted on their rows."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _study(name):
    return importlib.import_module(f"benchmarks.{name}")


class TestCategoricalSmoke:
    @pytest.fixture(scope="class")
    def rows(self):
        study = _study("categorical")
        return study, study.run(study.smoke_config(), jobs=1, log=lambda m: None)

    def test_every_encoding_and_method_once_per_cell(self, rows):
        study, rows = rows
        seen = sorted((r["encoding"], r["method"]) for r in rows)
        assert seen == sorted((e, m) for e in study.ENCODINGS for m in study.METHODS)
        for r in rows:
            assert 0.0 <= r["acc"] <= 1.0 and r["wall_s"] >= 0

    def test_both_encodings_see_the_same_rows(self):
        study = _study("categorical")
        data = study.prepare("generated", study.generated_pool(), (None, None), 0)
        one_hot, embedded = data["one_hot"][0], data["embedded"][0]
        assert len(one_hot) == len(embedded) == len(data["y_train"])
        # the numeric column "a" is standardised the same way in both
        np.testing.assert_allclose(one_hot[:, 0], embedded["a"].to_numpy(), rtol=1e-5)
        # the string column reaches the estimator as strings, to be embedded
        assert not np.issubdtype(np.asarray(embedded["colour"]).dtype, np.number)
        assert one_hot.shape[1] > embedded.shape[1]

    def test_summary_pairs_the_encodings(self, rows):
        study, rows = rows
        summary = study.summary(rows)
        assert {s["method"] for s in summary} == set(study.METHODS)
        l2rw = [r for r in rows if r["method"] == "l2rw"]
        by = {r["encoding"]: r["acc"] for r in l2rw}
        got = next(s for s in summary if s["method"] == "l2rw")["mean_diff"]
        assert got == pytest.approx(by["embedded"] - by["one_hot"])


class TestSparseMemorySmoke:
    def test_rows_and_the_sparse_step_allocates_less(self):
        study = _study("sparse_memory")
        settings = dict(study.SMOKE, widths=(2_000,), n_rows=200, nnz=5)
        rows = study.run(settings)
        assert {(r["layout"], r["step"]) for r in rows} == {
            (layout, step) for layout in ("sparse", "dense") for step in ("l2rw", "plain")}
        peak = {(r["layout"], r["step"]): r["peak_bytes"] for r in rows}
        # 40 dense rows of 2,000 floats are 320 kB; their sparse form 2 kB
        assert peak[("sparse", "l2rw")] < peak[("dense", "l2rw")]


@pytest.mark.parametrize("name", ["categorical", "sparse_memory"])
def test_render_rebuilds_the_report_from_the_json(name, tmp_path, monkeypatch):
    study = _study(name)
    if name == "sparse_memory":  # tinier than --smoke: the rebuild is what is tested
        monkeypatch.setattr(study, "SMOKE", dict(study.SMOKE, widths=(200,), n_rows=80))
        monkeypatch.setattr(study, "figure", lambda rows, path: None)
    study.main(["--smoke", "--out", str(tmp_path / "run")])
    saved = json.loads((tmp_path / "run" / f"{name}.json").read_text())
    assert set(saved) >= {"meta", "rows"} and saved["meta"]["command"].startswith(
        f"python -m benchmarks.{name}")
    study.main(["--render", str(tmp_path / "run" / f"{name}.json"),
                "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / f"{name}.md").read_text() == \
        (tmp_path / "run" / f"{name}.md").read_text()
