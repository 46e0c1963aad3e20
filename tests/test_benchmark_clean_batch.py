"""benchmarks/clean_batch.py: the smoke run, its rows, the rule and the report."""

import json

from benchmarks import clean_batch


def _rows(accs):
    """Rows of one route: {(dataset, clean batch): [accuracy per seed]}."""
    return [dict(dataset=d, kind="uniform", seed=s, route="paper", clean_batch=b,
                 acc=a, reused=False, wall_s=1.0, n_clean=100)
            for (d, b), values in accs.items() for s, a in enumerate(values)]


def test_rule_takes_the_smallest_batch_within_both_bars():
    rows = _rows({("a", "batch"): [0.80, 0.80], ("b", "batch"): [0.90, 0.90],
                  # 16: mean -1 point: out; 32: mean -0.25, worst cell -0.5: in
                  ("a", 16): [0.79, 0.79], ("b", 16): [0.89, 0.89],
                  ("a", 32): [0.795, 0.795], ("b", 32): [0.90, 0.90],
                  ("a", 64): [0.80, 0.80], ("b", 64): [0.90, 0.90]})
    chosen, checks = clean_batch.verdict(rows, "paper", [16, 32, 64])
    assert chosen == 32
    assert round(checks[16][0], 6) == -1.0 and round(checks[32][1], 6) == -0.5


def test_rule_keeps_the_default_when_one_cell_drops_too_far():
    # Mean -0.5 (allowed) but cell "a" -3 points: no candidate qualifies.
    rows = _rows({("a", "batch"): [0.80], ("b", "batch"): [0.80],
                  ("a", 16): [0.77], ("b", 16): [0.82]})
    assert clean_batch.verdict(rows, "paper", [16])[0] == clean_batch.DEFAULT


def test_smoke_run_and_render(tmp_path):
    assert clean_batch.main(["--smoke", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "clean_batch.json").read_text())
    rows = saved["rows"]
    routes = {r["route"] for r in rows}
    assert routes == {"plain", *clean_batch.ROUTES}
    for route in clean_batch.ROUTES:
        batches = [r["clean_batch"] for r in rows if r["route"] == route]
        assert batches == [16, 32, clean_batch.DEFAULT]
    assert all(0 <= r["acc"] <= 1 and r["wall_s"] > 0 for r in rows)
    text = (tmp_path / "clean_batch.md").read_text()
    assert "rule says" in text and "--smoke" in text
    again = tmp_path / "again"
    clean_batch.main(["--render", str(tmp_path / "clean_batch.json"), "--out", str(again)])
    assert (again / "clean_batch.md").read_text() == text
