"""benchmarks/compiled_step.py: its rows, and the report rebuilt from them."""

import json

import pytest
import torch

from benchmarks import compiled_step


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled_step")
    # Empty torch.compile caches: past recompile_limit graphs (earlier tests build
    # some) the compiled step falls back, and the study would report it as failing.
    torch._dynamo.reset()
    # aot_eager: the study's path through the traced graph, without inductor's build.
    saved = compiled_step.main(["--smoke", "--backend", "aot_eager", "--out", str(out)])
    return out, saved


class TestCompiledStepStudy:
    def test_rows_compare_the_compiled_step_with_the_eager_one(self, smoke):
        _, saved = smoke
        rows = saved["rows"]
        assert rows["backend"] == "aot_eager"
        assert [r["case"].split(",")[0] for r in rows["steps"]] == ["MLP tiny", "LeNet"]
        for row in rows["steps"]:
            # Both compile under aot_eager and give the eager step's numbers.
            assert row["difference"]["weights"] < 1e-6
            assert row["difference"]["gradients"] < 1e-6
            assert set(row["ms"]) == {"plain", "eager", "compiled"}
            assert all(len(t) == 2 and min(t) > 0 for t in row["ms"].values())
        fit = rows["fit"]
        assert fit["weight_difference"] < 1e-5 and fit["fallbacks"] == []
        assert len(fit["s"]["eager"]) == len(fit["s"]["compiled"]) == 1

    def test_render_rebuilds_the_report_from_the_json(self, smoke, tmp_path):
        out, saved = smoke
        assert json.loads((out / "compiled_step.json").read_text())["rows"] == \
            json.loads(json.dumps(saved["rows"]))
        compiled_step.main(["--render", str(out / "compiled_step.json"),
                            "--out", str(tmp_path)])
        assert (tmp_path / "compiled_step.md").read_text() == \
            (out / "compiled_step.md").read_text()

    def test_a_step_that_does_not_compile_is_reported_not_timed(self, smoke):
        saved = dict(smoke[1])
        rows = json.loads(json.dumps(saved["rows"]))
        rows["steps"][1]["difference"] = "UnboundLocalError: buf6"
        del rows["steps"][1]["ms"]["compiled"]
        compiled_step.render({**saved, "rows": rows})  # renders without its times
        cells = compiled_step.step_cells(rows["steps"][1])
        assert cells[3:6] == ["not timed", "-", "does not compile: UnboundLocalError: buf6"]
        assert compiled_step.step_cells(rows["steps"][0])[3] != "not timed"
