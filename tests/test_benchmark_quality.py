"""Smoke test of benchmarks/quality.py: the --smoke run on digits, and the goal logic.

Digits ships with scikit-learn, so nothing is downloaded; the test fails if the
benchmark tries to fetch an artifact.
"""

import dataclasses
import importlib
import importlib.util
import math
from pathlib import Path

import pytest

from benchmarks.common.baselines import n_epochs
from benchmarks.environment import load_rows, save_rows
from conftest import refuse_downloads



@pytest.fixture(scope="module")
def quality():
    return importlib.import_module("benchmarks.quality")


@pytest.fixture
def no_download(quality, monkeypatch, tmp_path):
    refuse_downloads(monkeypatch, tmp_path / "empty-cache",
                     importlib.import_module("benchmarks.datasets"))


def test_smoke_run_writes_report(quality, no_download, tmp_path):
    out = tmp_path / "out"
    assert quality.main(["--smoke", "--out", str(out), "--raw",
                         str(tmp_path / "raw.json")]) == 0
    text = (out / "quality.md").read_text()
    assert "smoke` run" in text  # flagged as not being results

    # The numbers, asserted on the rows written next to the report (and to --raw).
    saved = load_rows(out / "quality.json")
    assert saved == load_rows(tmp_path / "raw.json")
    assert saved["meta"]["config"]["mode"] == "smoke"
    assert saved["meta"]["command"].startswith("python -m benchmarks.quality --smoke")
    assert saved["meta"]["versions"].startswith("python")
    # StudyRun's layout: the rows and the run's record (run_record's fields, then
    # quality's own: the configuration, the workers, the load at the start).
    assert set(saved) == {"rows", "meta"}
    assert list(saved["meta"]) == ["command", "started", "elapsed", "load", "machine",
                                   "versions", "config", "jobs", "load_start"]
    assert saved["meta"]["jobs"] == 1
    res = quality.Results(saved["rows"])
    # Every part ran, so the report shows every part: noise and imbalance kept in
    # the configuration it is rendered with, rows of the collapse study and extras.
    cfg = quality.reported_config(res, quality.smoke_config())
    assert cfg.datasets == {"digits": (500, 300)} and cfg.imb_proportions == (0.9,)
    assert {"noise", "imbalance", "collapse"} <= {r["part"] for r in saved["rows"]}
    # Its goals, on digits (not one of the main sets): UniformFlip and 4-vs-9.
    found = {g["key"]: g for g in quality.goals(res, cfg)}
    assert set(found) == {("uniform", 10), ("imbalance", 10)}
    assert all(math.isfinite(m) for g in found.values() for m in g["margins"].values())
    # The weights' diagnostics and the compute table have a row per cell or method.
    assert len(quality.diagnostics_table(res, cfg)) > 2
    assert len(quality.time_table(res)) > 2
    # Every method has a finite score in [0, 1] on digits for each noise kind.
    for kind in ("uniform", "background", "pair"):
        scores = {m: res.noise("digits", kind, 0.4, 10, m) for m in quality.NOISE_COLUMNS}
        scores = {m: v for m, v in scores.items() if v}
        assert len(scores) >= 6, (kind, scores)  # cleanlab may be absent in CI
        assert all(0 <= x <= 1 for v in scores.values() for x in v), (kind, scores)
    # The imbalance part ran at its one proportion, L2RW and the ceiling scored.
    assert res.imbalance(0.9, 10, "l2rw") and res.imbalance(0.9, 10, "ceiling")
    # Figures: written when matplotlib is available.
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("noise_rate", "imbalance", "collapse"):
            assert (out / f"quality_{name}.png").stat().st_size > 1000

    # The rows rebuild the report byte for byte (with its figures, which it links).
    again = tmp_path / "again"
    assert quality.main(["--render", str(out / "quality.json"), "--out", str(again)]) == 0
    assert (again / "quality.md").read_text() == text


def _row(quality, dataset, kind, clean, method, acc, seed=0):
    return dict(part="noise", dataset=dataset, kind=kind, rate=0.4, clean=clean,
                method=method, seed=seed, acc=acc, bal_acc=acc)


def test_goal_logic(quality):
    cfg = quality.full_config()
    cfg.imb_proportions = ()
    rows = []
    for i, d in enumerate(quality.MAIN_SETS + ("digits",)):
        for kind in cfg.kinds:
            for clean in cfg.clean_sizes:
                # L2RW beats the baselines everywhere except on the first set.
                l2rw = 0.80 if i else 0.60
                if kind == "uniform":
                    l2rw = 0.695  # 0.5 point below the best baseline: still a pass
                rows += [_row(quality, d, kind, clean, "plain_noisy", 0.70),
                         _row(quality, d, kind, clean, "hgb", 0.65),
                         _row(quality, d, kind, clean, "l2rw", l2rw)]
    found = {g["key"]: g for g in quality.goals(quality.Results(rows), cfg)}
    assert found[("background", "acc")]["ok"] and found[("pair", "acc")]["ok"]
    assert found[("uniform", 10)]["ok"] and found[("uniform", 100)]["ok"]
    assert found[("background", "acc")]["wins"] == 4
    first = quality.MAIN_SETS[0]
    assert found[("background", "acc")]["margins"][first] == pytest.approx(-0.10)
    assert found[("uniform", 10)]["margins"][first] == pytest.approx(-0.005)

    # Two losing sets out of five: FAIL.
    for r in rows:
        if r["dataset"] == "adult" and r["method"] == "l2rw" and r["kind"] == "pair":
            r["acc"] = 0.5
    _, verdicts = quality.evaluate_goals(quality.Results(rows), cfg)
    assert not verdicts[("pair", "acc")] and verdicts[("background", "acc")]


def test_epoch_rule(quality):
    cfg = quality.full_config()
    assert n_epochs(cfg, 4000) == cfg.epochs  # 32 batches x 20 epochs > 200
    assert n_epochs(cfg, 100) == cfg.min_steps  # one batch per epoch
    assert n_epochs(cfg, 300) == math.ceil(cfg.min_steps / 3)


#: The metadata of a run, as a test writes it (run_record's fields and quality's).
META = dict(command="test", started="2026-01-01T00:00:00+00:00", elapsed=1.0, jobs=1,
            load="0", load_start="0")


def _saved(cfg, rows):
    """What a run of ``cfg`` with ``rows`` saves: the rows and its record."""
    return dict(rows=rows, meta=dict(META, config=dataclasses.asdict(cfg)))


def _lenet_imbalance(quality, seeds=(0, 1), plain=False):
    """A LeNet configuration with one 4-vs-9 cell (0.995, 10 clean rows per class) and
    its rows: the ceiling at 0.98, L2RW at 0.96 (and plain training at 0.5)."""
    cfg = quality.use_module(quality.full_config(), "lenet")
    cfg.imb_clean_sizes, cfg.imb_proportions = (10,), (0.995,)
    cells = ((None, None, "ceiling", 0.98), (0.995, 10, "l2rw", 0.96))
    cells += ((0.995, 10, "plain_noisy", 0.5),) if plain else ()
    return cfg, [dict(part="imbalance", dataset="mnist", seed=s, proportion=p, clean=c,
                      method=m, acc=v, bal_acc=v, max_share=0.5)
                 for s in seeds for p, c, m, v in cells]


def test_render_merges_runs_and_keeps_the_merge(quality, tmp_path):
    # Two runs (other seeds, other parts) rendered together: the merged rows are
    # written next to the report, and rebuild it alone, merge line included.
    runs = []
    for seed, part in ((0, "imbalance"), (1, "extras")):
        cfg, rows = _lenet_imbalance(quality, seeds=(seed,))
        meta = dict(META, command=f"run {seed}", elapsed=60.0 * (seed + 1),
                    config=dict(dataclasses.asdict(cfg), parts=[part]))
        runs.append(str(tmp_path / f"run{seed}.json"))
        save_rows(runs[-1], rows, meta)
    merged, again = tmp_path / "merged", tmp_path / "again"
    assert quality.main(["--render", *runs, "--out", str(merged), "--no-charts"]) == 0
    text = (merged / "quality_lenet.md").read_text()
    assert "Command: `run 0`  \nMerged with the rows of: `run 1` (2.0 min)" in text
    saved = load_rows(merged / "quality_lenet.json")
    assert sorted(r["seed"] for r in saved["rows"]) == [0, 0, 1, 1]
    assert saved["meta"]["config"]["parts"] == ["imbalance", "extras"]
    assert quality.main(["--render", str(merged / "quality_lenet.json"), "--out",
                         str(again), "--no-charts"]) == 0
    assert (again / "quality_lenet.md").read_text() == text
    # Rendered where it lies, a file is not rewritten.
    before = (merged / "quality_lenet.json").stat().st_mtime_ns
    assert quality.main(["--render", str(merged / "quality_lenet.json"), "--out",
                         str(merged), "--no-charts"]) == 0
    assert (merged / "quality_lenet.json").stat().st_mtime_ns == before


class TestLeNetOption:
    def test_keeps_only_image_sets_and_names_the_report(self, quality):
        cfg = quality.use_module(quality.full_config(), "lenet")
        assert set(cfg.datasets) == {"mnist", "fashion_mnist"}
        assert cfg.imb_proportions  # 4-vs-9 is MNIST: it stays
        assert not cfg.collapse_kinds and not cfg.gradnorm_seeds  # letter: dropped
        assert quality.report_name(cfg) == "quality_lenet"
        assert quality.report_name(quality.full_config()) == "quality"
        assert "LeNet" in " ".join(quality.protocol_lines(cfg))

    def test_lenet_nets_take_flat_images(self, quality):
        import numpy as np
        import torch

        cfg = quality.use_module(quality.smoke_config(), "lenet")
        params = quality.net_params(cfg, 784, 2, 64)
        assert "module__hidden_layer_sizes" not in params
        module = params["module"](n_features=784, n_classes=2)
        out = module(torch.as_tensor(np.random.rand(5, 784), dtype=torch.float32))
        assert out.shape == (5, 2)
        with pytest.raises(ValueError, match="784 features"):
            params["module"](n_features=64, n_classes=2)

    def test_report_leaves_out_parts_that_did_not_run(self, quality, tmp_path):
        cfg, rows = _lenet_imbalance(quality, plain=True)
        path = quality.write(_saved(cfg, rows), tmp_path, charts=False)
        assert path.name == "quality_lenet.md"
        # No noise rows: the report is rendered without the noise part (no noise
        # section, no noise goal), the 4-vs-9 part kept.
        res = quality.Results(rows)
        reported = quality.reported_config(res, cfg)
        assert reported.datasets == {} and reported.imb_proportions == (0.995,)
        # Its one goal, judged on the rows: L2RW 2 points below the ceiling passes.
        _, verdicts = quality.evaluate_goals(res, reported)
        assert verdicts == {("imbalance", 10): True}
        assert quality.goals(res, reported)[0]["margins"] == {"4-vs-9": pytest.approx(-0.02)}

    def test_full_report_points_to_its_findings_page(self, quality, tmp_path):
        # The hand-written reading is prose in docs/findings, not text in the code.
        cfg, rows = _lenet_imbalance(quality)
        text = quality.write(_saved(cfg, rows), tmp_path, charts=False).read_text()
        section = text.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
        assert f"`{quality.FINDINGS_PAGE}`, *LeNet*" in section
        page = Path(__file__).resolve().parent.parent / quality.FINDINGS_PAGE
        assert "\n## LeNet" in page.read_text()

    @pytest.mark.parametrize("argv", [["--datasets", "no_such_set"],
                                      ["--module", "lenet", "--datasets", "digits"]])
    def test_bad_data_set_choice_is_refused(self, quality, argv, capsys):
        with pytest.raises(SystemExit):
            quality.main(["--smoke"] + argv)
        err = capsys.readouterr().err
        assert ("unknown data sets" in err) if "no_such_set" in argv else ("28x28" in err)


@pytest.mark.parametrize("name", ["quality", "quality_lenet"])
def test_committed_reports_are_rebuilt_from_their_rows(quality, name, tmp_path):
    # Byte for byte, with the figures they link (redrawn, but not compared: the
    # figures' bytes depend on matplotlib's version).
    from benchmarks.environment import RESULTS

    assert quality.main(["--render", str(RESULTS / f"{name}.json"), "--out",
                         str(tmp_path)]) == 0
    assert (tmp_path / f"{name}.md").read_bytes() == (RESULTS / f"{name}.md").read_bytes()
    assert (tmp_path / f"{name}.json").read_bytes() == (RESULTS / f"{name}.json").read_bytes()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / f"{name}_imbalance.png").stat().st_size > 1000
