"""benchmarks/tables.py: the --smoke run on digits (no download), asserted on its rows."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common.protocol import clean_split, prior_weights
from conftest import refuse_downloads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    return importlib.import_module("benchmarks.tables")


@pytest.fixture(scope="module")
def smoke(tables, tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    refuse_downloads(monkeypatch, tmp_path_factory.mktemp("empty-cache"),
                     tables.bench_data)
    try:
        cfg = tables.smoke_config()
        rows, meta = tables.run(cfg, jobs=1, log=lambda m: None)
    finally:
        monkeypatch.undo()
    return cfg, rows, meta


class TestSmokeRows:
    def test_every_method_in_every_cell(self, tables, smoke):
        cfg, rows, _ = smoke
        for protocol, size in cfg.protocols:
            for kind in cfg.kinds:
                found = {r["method"] for r in rows if r["protocol"] == protocol
                         and r["size"] == size and r["kind"] == kind}
                expected = set(tables.BASELINES) - {"clean_only"} | set(tables.ROUTES)
                if protocol == "audit":  # an audit has the prior already
                    expected -= {"l2rw_prior", "trusted_prior"}
                assert found == expected
        assert {r["method"] for r in rows if r["kind"] == "*"} == {"ceiling", "clean_only"}
        for r in rows:
            assert 0.0 <= r["acc"] <= 1.0 and 0.0 <= r["bal_acc"] <= 1.0

    def test_audit_size_and_weights_recorded(self, smoke):
        cfg, rows, _ = smoke
        audit = [r for r in rows if r["protocol"] == "audit"]
        assert {r["n_clean"] for r in audit} == {round(0.2 * audit[0]["n_train"])}
        per_class = [r for r in rows if r["protocol"] == "per_class"]
        assert {r["n_clean"] for r in per_class} == {100}
        reweighted = [r for r in rows if r["method"] == "reweighted_hgb"]
        assert all(0.0 <= r["zero_share"] <= 1.0 for r in reweighted)

    def test_summary_is_the_recommended_route_against_the_best_baseline(self, tables,
                                                                        smoke):
        cfg, rows, _ = smoke
        protocol, kind = cfg.protocols[0], cfg.kinds[0]
        means, best, margin = tables.cell_summary(rows, "digits", protocol, kind)
        route = tables.recommended_method("digits", protocol, rows)
        assert route == "trusted"
        own = [r["acc"] for r in rows if r["method"] == route and r["kind"] == kind
               and r["protocol"] == protocol[0]]
        baselines = {m: means[m][0] for m in tables.BASELINES}
        assert best == max(baselines, key=baselines.get)
        assert margin == pytest.approx(np.mean(own) - baselines[best])

    def test_trusted_classifier_records_its_choice(self, tables, smoke):
        from sk_l2rw.selection import ROUTES

        _, rows, _ = smoke
        found = [r for r in rows if r["method"] in ("trusted", "trusted_prior")]
        assert {r["method"] for r in found} == {"trusted", "trusted_prior"}
        assert all(set(r["route"].split("+")) <= set(ROUTES) for r in found)
        assert all(0.0 <= r["cv_acc"] <= 1.0 for r in found)
        for r in found:  # every scored route's figures, the chosen ones' among them
            chosen = r["route"].split("+")
            assert set(r["cv_routes"]) <= set(ROUTES) and set(chosen) <= set(r["cv_routes"])
            # averaged: exactly the routes within one paired SE of the best, in order
            assert chosen == [t for t, (_, _, gap, se) in r["cv_routes"].items()
                              if gap <= se + 1e-6]
            brier, acc, gap, _ = r["cv_routes"][chosen[0]]
            if len(chosen) == 1:
                assert acc == pytest.approx(r["cv_acc"], abs=1e-6)
            assert min(v[0] for v in r["cv_routes"].values()) == pytest.approx(brier - gap, abs=2e-6)
        irbl = [r for r in rows if r["method"] == "irbl_hgb"]
        assert all(np.isfinite(r["weight_ratio"]) for r in irbl)

    def test_goals_of_the_trusted_route(self, tables, smoke):
        _, rows, _ = smoke
        lines = tables.trusted_goals(rows)
        cells = len({(r["protocol"], r["size"], r["kind"]) for r in rows
                     if r["method"] == "trusted"})
        assert f"of {cells} (" in lines[2]
        chosen = tables.chosen_table(rows)
        assert len(chosen) == 2 + cells  # header, rule, one row per cell

    def test_rows_without_trusted_keep_the_earlier_rule(self, tables, smoke):
        _, rows, _ = smoke
        old = [r for r in rows if r["method"] != "trusted"]
        assert tables.recommended_method("digits", ("per_class", 10), old) == "l2rw_toc"
        assert tables.recommended_method("adult", ("audit", 200), old) == "reweighted_hgb"

    def test_report_and_rows_written(self, tables, smoke, tmp_path):
        cfg, rows, meta = smoke
        assert meta["command"] == "python -m benchmarks.tables --smoke"
        path = tables.write({"meta": meta, "rows": rows}, tmp_path)
        saved = json.loads((tmp_path / "tables.json").read_text())
        assert saved["rows"] == json.loads(json.dumps(rows))
        # The layout: run_record's record, then the run's config and jobs.
        assert list(saved) == ["meta", "rows"]
        assert list(saved["meta"]) == ["command", "started", "elapsed", "load", "machine",
                                       "versions", "config", "jobs"]
        assert saved["meta"]["config"]["mode"] == "smoke" and saved["meta"]["jobs"] == 1
        text = path.read_text()
        # Every cell has its digits row in the accuracy and balanced-accuracy tables:
        # a best baseline and a finite margin of the recommended route over it.
        for metric in ("acc", "bal_acc"):
            for protocol in cfg.protocols:
                for kind in cfg.kinds:
                    _, best, margin = tables.cell_summary(rows, "digits", protocol, kind,
                                                          metric)
                    assert best in tables.BASELINES and np.isfinite(margin)
        assert tables.main(["--render", str(tmp_path / "tables.json"),
                            "--out", str(tmp_path / "again")]) == 0
        assert (tmp_path / "again" / "tables.md").read_text() == text
        # The machine and versions are the run's, not the renderer's.
        assert saved["meta"]["machine"] == meta["machine"] and "torch" in saved["meta"]["versions"]
        rows_elsewhere = dict(saved, meta=dict(saved["meta"], machine="Elsewhere CPU"))
        assert "Machine: Elsewhere CPU," in tables.render(rows_elsewhere["rows"],
                                                          rows_elsewhere["meta"], "cmd")


    def test_a_partial_run_merges_with_saved_rows(self, tables, smoke):
        cfg, rows, meta = smoke
        saved = {"rows": rows, "meta": dict(meta, command="python -m benchmarks.tables "
                                            "--smoke", started="then")}
        part = [dict(r, acc=0.5) for r in rows if r["method"] == "trusted"]
        merged, merged_meta = tables.merge_rows(part, meta, saved, ("trusted",))
        assert len(merged) == len(rows)
        assert [r for r in merged if r["method"] == "trusted"] == part
        assert [r for r in merged if r["method"] != "trusted"] == [
            r for r in rows if r["method"] != "trusted"]
        assert merged_meta["merged"]["methods"] == ["trusted"]
        assert "come from this run" in tables.render(merged, merged_meta, "cmd")
        # Merging again into the merge: the other rows still name the first run.
        again, again_meta = tables.merge_rows(
            part, meta, {"rows": merged, "meta": dict(merged_meta, command="merge",
                                                      started="later")}, ("trusted",))
        assert again == merged
        assert again_meta["merged"]["command"] == "python -m benchmarks.tables --smoke"
        assert again_meta["merged"]["started"] == "then"
        # One that refits less than the saved merge did names the merge itself.
        _, fewer = tables.merge_rows([], meta, {"rows": merged, "meta": dict(
            merged_meta, command="merge", started="later")}, ("hgb",))
        assert fewer["merged"]["command"] == "merge"


def test_runs_of_other_seeds_join_into_one(tables, smoke, tmp_path):
    _, rows, meta = smoke
    first = {"rows": rows, "meta": dict(meta, command="run 0", started="2026-01-01T00:00")}
    second = {"rows": [dict(r, seed=1) for r in rows],
              "meta": dict(meta, config=dict(meta["config"], seeds=[1]), command="run 1",
                           started="2026-01-02T00:00", merged={
                               "methods": ["trusted"], "command": "run 1a",
                               "started": "2026-01-01T12:00"})}
    joined, joined_meta = tables.join_seeds([second, first])
    assert len(joined) == 2 * len(rows)
    assert joined_meta["config"]["seeds"] == [0, 1]
    assert joined_meta["started"] == "2026-01-01T00:00" and "merged" not in joined_meta
    assert joined_meta["elapsed"] == 2 * meta["elapsed"]
    text = tables.render(joined, joined_meta, "join")
    assert "- seed 1: `run 1` (started 2026-01-02T00:00); rows of trusted from it" in text
    assert "- seed 0: `run 0` (started 2026-01-01T00:00)\n" in text
    for path, saved in (("a.json", first), ("b.json", second)):
        (tmp_path / path).write_text(json.dumps(saved))
    assert tables.main(["--join", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--out", str(tmp_path / "both")]) == 0
    written = json.loads((tmp_path / "both" / "tables.json").read_text())
    assert written["rows"] == [*first["rows"], *second["rows"]]
    # Joined again with a third seed: each seed still names the run it comes from.
    third = {"rows": [dict(r, seed=2) for r in rows],
             "meta": dict(meta, config=dict(meta["config"], seeds=[2]), command="run 2",
                          started="2026-01-03T00:00")}
    again = tables.join_seeds([{"rows": joined, "meta": joined_meta}, third])[1]
    assert [(list(p["seeds"]), p["command"]) for p in again["joined"]] == [
        ([1], "run 1"), ([0], "run 0"), ([2], "run 2")]
    with pytest.raises(ValueError, match="share seeds"):
        tables.join_seeds([first, first])
    other = dict(first, meta=dict(meta, config=dict(meta["config"], rate=0.2,
                                                    seeds=[1])))
    with pytest.raises(ValueError, match="differ in their seeds only"):
        tables.join_seeds([first, other])
    fewer = dict(second, rows=[r for r in second["rows"] if r["method"] != "hgb"])
    with pytest.raises(ValueError, match="differ in their seeds only"):
        tables.join_seeds([first, fewer])
    # A merged run names only the methods it fitted: its rows decide.
    refit = dict(second, meta=dict(second["meta"], config=dict(
        second["meta"]["config"], methods=["trusted"])))
    assert len(tables.join_seeds([first, refit])[0]) == 2 * len(rows)


def test_methods_limits_what_a_run_fits(tables):
    cfg = tables.smoke_config()
    cfg.methods = ("hgb", "glc_hgb")
    rows, _ = tables.run(cfg, jobs=1, log=lambda m: None)
    assert {r["method"] for r in rows} == {"hgb", "glc_hgb"}
    with pytest.raises(SystemExit):
        tables.main(["--smoke", "--methods", "nonsense"])
    with pytest.raises(SystemExit):
        tables.main(["--smoke", "--merge", "x.json"])


class TestPieces:
    def test_rule(self, tables):
        for d in ("adult", "kdd_census", "letter"):
            assert tables.recommended_method(d, ("audit", 200)) == "reweighted_hgb"
        for d in ("digits", "mnist", "fashion_mnist"):
            assert tables.recommended_method(d, ("per_class", 10)) == "l2rw_toc"

    def test_clean_splits(self):
        rng = np.random.RandomState(0)
        y = (rng.rand(4000) < 0.1).astype(int)
        X = np.arange(4000)[:, None]
        _, y_rest, Xc, yc = clean_split(X, y, ("audit", 0.05), seed=1)
        assert len(yc) == 200 and len(y_rest) == 3800
        assert abs(yc.mean() - y.mean()) < 0.04  # an audit keeps the prior
        assert not set(Xc.ravel()) & set(clean_split(X, y, ("audit", 0.05), 1)[0].ravel())
        _, _, _, yc = clean_split(X, y, ("per_class", 10), seed=1)
        assert np.bincount(yc).tolist() == [10, 10]

    def test_prior_weights(self):
        weights = prior_weights(np.array([0.9, 0.1]), np.array([0] * 10 + [1] * 10))
        assert weights == pytest.approx({0: 1.8, 1: 0.2})

    def test_parse_protocol(self, tables):
        assert tables.parse_protocol("per_class:10") == ("per_class", 10)
        assert tables.parse_protocol("audit:0.01") == ("audit", 0.01)
        assert tables.parse_protocol("audit:200") == ("audit", 200)
        with pytest.raises(ValueError, match="per_class:N"):
            tables.parse_protocol("random:5")


def test_class_balance_study_smoke(tables, tmp_path):
    balance = importlib.import_module("benchmarks.tables_balance")
    monkeypatch = pytest.MonkeyPatch()
    refuse_downloads(monkeypatch, tmp_path / "empty-cache", tables.bench_data)
    try:
        rows = balance.main(["--smoke", "--out", str(tmp_path / "run")])
    finally:
        monkeypatch.undo()
    saved = json.loads((tmp_path / "run" / "tables_balance.json").read_text())
    assert saved["rows"] == rows and saved["meta"]["smoke"] and saved["meta"]["seed"] == 0
    # The report is rebuilt from the rows alone, byte for byte.
    balance.main(["--render", str(tmp_path / "run" / "tables_balance.json"),
                  "--out", str(tmp_path / "again")])
    assert ((tmp_path / "again" / "tables_balance.md").read_text()
            == (tmp_path / "run" / "tables_balance.md").read_text())
    assert {r["model"] for r in rows} == {"reweighted_hgb", "hgb_uniform_weights", "hgb"}
    for r in rows:
        assert 0 <= r["weighted_noisy_1"] <= 1 and 0 <= r["predicted_1"] <= 1
        assert r["noisy_1"] != r["true_1"]  # 40% of the labels were flipped


def test_a_method_refusing_a_cell_is_recorded_not_scored(tables, tmp_path):
    """An audit of 2% of 500 digits leaves classes without a trusted row: GLC refuses,
    TrustedClassifier scores the routes that can fit on the classes with 2 trusted
    rows or more; the run goes on."""
    monkeypatch = pytest.MonkeyPatch()
    refuse_downloads(monkeypatch, tmp_path / "empty-cache", tables.bench_data)
    try:
        cfg = tables.smoke_config()
        cfg.protocols = (("audit", 0.02),)
        rows, meta = tables.run(cfg, jobs=1, log=lambda m: None)
    finally:
        monkeypatch.undo()
    refused = {r["method"] for r in rows if "error" in r}
    assert refused == {"glc_hgb", "glc_net"}
    assert not tables.cell_values(rows, "digits", ("audit", 0.02), "background", "glc_hgb")
    trusted = [r for r in rows if r["method"] == "trusted"]
    from sk_l2rw.selection import ROUTES

    assert len(trusted) == 1 and trusted[0]["cv_acc"] is not None
    assert trusted[0]["route"] in set(ROUTES) - {"glc", "glc_net"}
    text = tables.render(rows, meta, "python -m benchmarks.tables --smoke")
    assert "GLC needs a trusted row of every class" in text


class TestReplay:
    """Selection rules replayed on saved rows, judged by the baselines' scores."""

    @staticmethod
    def rows():
        cell = dict(dataset="adult", seed=0, protocol="audit", size=200)
        return [dict(cell, kind="uniform", method="hgb", acc=0.80),
                dict(cell, kind="uniform", method="glc_hgb", acc=0.90),
                dict(cell, kind="*", method="clean_only", acc=0.70),
                dict(cell, kind="uniform", method="irbl_hgb", error="refused"),
                # mixed first in the prior order, 0.01 behind glc with an SE of 0.006
                dict(cell, kind="uniform", method="trusted", acc=0.85, route="glc",
                     cv_routes={"mixed": [0.30, 0.80, 0.01, 0.006],
                                "glc": [0.29, 0.90, 0.0, 0.0],
                                "trusted_only": [0.35, 0.70, 0.06, 0.01]})]

    def test_each_rule_picks_and_is_judged_by_its_baseline(self, tables):
        rules = {"1 SE": tables.first_within(1), "2 SE": tables.first_within(2),
                 "lowest Brier": tables.REPLAY_RULES["lowest Brier"]}
        out = tables.replay_rules(self.rows(), rules)
        assert out["as run"] == [pytest.approx(-5.0)]
        assert out["1 SE"] == [pytest.approx(0.0)]
        assert out["2 SE"] == [pytest.approx(-10.0)]
        assert out["lowest Brier"] == [pytest.approx(0.0)]
        assert out["oracle among the scored routes"] == [pytest.approx(0.0)]

    def test_the_rule_replayed_is_trusted_classifiers(self, tables):
        from sk_l2rw.selection import SE_MARGIN

        (name,) = [n for n in tables.REPLAY_RULES if n.endswith("(the rule)")]
        assert name == f"first within {SE_MARGIN:g} SE, prior order (the rule)"
        rows = self.rows()
        assert tables.replay_rules(rows)[name] == tables.replay_rules(
            rows, {"k": tables.first_within(SE_MARGIN)})["k"]

    def test_a_row_without_cv_routes_is_not_replayed(self, tables):
        rows = self.rows()
        del rows[-1]["cv_routes"]
        assert all(v == [] for v in tables.replay_rules(rows).values())

    def test_on_a_run_the_oracle_bounds_every_rule(self, tables, smoke):
        _, rows, _ = smoke
        out = tables.replay_rules(rows)
        oracle = out.pop("oracle among the scored routes")
        assert oracle and None not in oracle
        for name, values in out.items():
            if name == "as run":  # its own refit, not a baseline's score
                continue
            assert all(v is None or v <= o + 1e-9 for v, o in zip(values, oracle)), name
        lines = tables.replay_table(tables.replay_rules(rows))
        assert len(lines) == 2 + len(tables.REPLAY_RULES) + 2


class TestLayout:
    """Runs saved before the record was run_record's (meta.load_end, another key
    order) are read as today's (upgrade): joined, merged, rendered and replayed."""

    @staticmethod
    def old(meta, rows, **fields):
        """``meta`` and ``rows`` in the old layout, as the old writer saved them."""
        record = dict(config=meta["config"], jobs=meta["jobs"], started=meta["started"],
                      elapsed=meta["elapsed"], load_end=meta["load"],
                      machine=meta["machine"], versions=meta["versions"],
                      command=meta["command"], **fields)
        return {"meta": record, "rows": rows}

    def test_upgrade_renames_and_orders_and_keeps_every_value(self, tables, smoke):
        _, rows, meta = smoke
        old = self.old(meta, rows, joined=[{"seeds": [0], "command": "c",
                                            "started": "s", "merged": None}])
        new = tables.upgrade(old)
        assert "load_end" in old["meta"]  # the saved dict is not changed
        assert list(new["meta"]) == [*tables.RECORD_KEYS, "joined"]
        assert new["meta"] == dict(meta, joined=old["meta"]["joined"])
        assert new["rows"] is rows
        assert tables.upgrade(new) == new  # today's layout is left as it is
        # A run that did not record its machine keeps none (the renderer's is shown).
        bare = dict(old, meta={k: v for k, v in old["meta"].items()
                               if k not in ("machine", "versions")})
        assert list(tables.upgrade(bare)["meta"]) == [
            "command", "started", "elapsed", "load", "config", "jobs", "joined"]
        assert tables.report(old) == tables.render(rows, new["meta"], meta["command"])
        assert "load average at the end " + meta["load"] in tables.report(old)

    def test_old_runs_join_render_and_replay_in_todays_layout(self, tables, smoke,
                                                              tmp_path, capsys):
        _, rows, meta = smoke
        old = self.old(dict(meta, started="2026-01-01T00:00:00+00:00",
                            load="9.99 9.99 9.99"), rows)
        new = {"meta": dict(meta, config=dict(meta["config"], seeds=[1]),
                            started="2026-01-02T00:00:00+00:00"),
               "rows": [dict(r, seed=1) for r in rows]}
        for name, saved in (("old", old), ("new", new)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "tables.json").write_text(json.dumps(saved, indent=0))
        assert tables.main(["--join", str(tmp_path / "new" / "tables.json"),
                            str(tmp_path / "old" / "tables.json"),
                            "--out", str(tmp_path / "both")]) == 0
        written = json.loads((tmp_path / "both" / "tables.json").read_text())
        assert list(written["meta"]) == [*tables.RECORD_KEYS, "joined"]
        # The earliest run's record (the old one's load), the join's command.
        assert written["meta"]["load"] == "9.99 9.99 9.99"
        assert written["meta"]["command"].startswith("python -m benchmarks.tables --join")
        assert written["meta"]["config"]["seeds"] == [0, 1]
        assert written["rows"] == [*new["rows"], *json.loads(json.dumps(rows))]
        text = (tmp_path / "both" / "tables.md").read_text()
        assert "load average at the end 9.99 9.99 9.99" in text
        # --render of the old file gives the report of its upgrade, byte for byte.
        assert tables.main(["--render", str(tmp_path / "old" / "tables.json"),
                            "--out", str(tmp_path / "again")]) == 0
        assert ((tmp_path / "again" / "tables.md").read_text()
                == tables.report(tables.upgrade(old)))
        capsys.readouterr()
        assert tables.main(["--replay", str(tmp_path / "old" / "tables.json")]) == 0
        assert capsys.readouterr().out.splitlines() == tables.replay_table(
            tables.replay_rules(rows))


@pytest.mark.parametrize("folder", ["", "tables_images", "tables_trusted",
                                    "tables_trusted/seeds_7_8"])
def test_committed_reports_rebuild_from_their_rows(tables, folder, tmp_path):
    """Each committed run is in today's layout, and its report rebuilt with --render
    is the committed one, byte for byte."""
    results = ROOT / "benchmarks" / "results" / folder
    saved = json.loads((results / "tables.json").read_text())
    assert "load_end" not in saved["meta"]
    assert list(saved["meta"])[:4] == ["command", "started", "elapsed", "load"]
    assert tables.main(["--render", str(results / "tables.json"),
                        "--out", str(tmp_path)]) == 0
    rebuilt = (tmp_path / "tables.md").read_text()
    committed = (results / "tables.md").read_text()
    assert rebuilt == committed


def test_averaging_study_refits_the_run_exactly(tables, smoke, tmp_path):
    study = importlib.import_module("benchmarks.tables_average")
    _, rows, meta = smoke
    (tmp_path / "run.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    cache = tmp_path / "cache"
    judged = study.main([str(tmp_path / "run.json"), "--cache", str(cache),
                         "--out", str(tmp_path / "out")])
    trusted = [r for r in rows if r["method"] == "trusted"]
    assert len(judged) == len(trusted) and len(list(cache.glob("*.npz"))) == len(trusted)
    for r in judged:
        cv = next(t["cv_routes"] for t in trusted if (t["protocol"], t["size"], t["kind"])
                  == (r["protocol"], r["size"], r["kind"]))
        assert set(r["routes"]) == set(cv)
        # The run's own choice (the default: averaged), refitted, is its refit exactly.
        assert r["refitted"] == r["as_run"]
        assert r["rules"]["average within 1 SE (average=True)"][0] == r["route"]
        one = r["rules"]["choose one (average=False)"][0]
        assert one == next(t for t, v in cv.items() if v[2] <= v[3])
        assert r["route"].split("+")[0] == one
        # Picked per class: the same trusted rows of every class (digits: 10 each).
        assert r["per_class"] == (r["protocol"] == "per_class")
        lowest = sorted(cv, key=lambda t: cv[t][0])[:3]
        assert r["rules"]["average of the 3 lowest Brier"][0] == "+".join(lowest)
        assert r["rules"]["3 lowest Brier, one if per class"][0] == (
            one if r["per_class"] else "+".join(lowest))
        assert r["best"] == max(x["acc"] for x in rows if x["method"] in tables.BASELINES
                                and x["protocol"] == r["protocol"] and x["size"] == r["size"]
                                and x["kind"] in (r["kind"], "*"))
    goals = study.cell_goals(judged)
    cells = len({(r["protocol"], r["size"], r["kind"]) for r in judged})
    # better than every baseline is within a point; within and far behind exclude
    assert all(g[0] == cells and g[1] + g[2] <= cells and g[3] <= g[1]
               for g in goals.values())
    assert goals["as run"] == goals["average within 1 SE (average=True)"]
    # The cache is reused (no refit: the same rows), and the report rebuilds byte for byte.
    again = study.main([str(tmp_path / "run.json"), "--cache", str(cache),
                        "--out", str(tmp_path / "again")])
    assert again == judged
    # A cache file without the trusted counts (an older run's) has them recomputed.
    for path in cache.glob("*.npz"):
        z = dict(np.load(path))
        assert z.pop("counts").sum() > 0
        np.savez_compressed(path, **z)
    assert study.main([str(tmp_path / "run.json"), "--cache", str(cache),
                       "--out", str(tmp_path / "older")]) == judged
    study.main(["--render", str(tmp_path / "out" / "tables_average.json"),
                "--out", str(tmp_path / "render")])
    assert ((tmp_path / "render" / "tables_average.md").read_text()
            == (tmp_path / "out" / "tables_average.md").read_text())
