"""Average the routes the trusted rows cannot tell apart, or choose one of them?

For every ``TrustedClassifier`` row of a saved run of ``benchmarks/tables.py`` that kept
its trusted-CV figures (``cv_routes``), this rebuilds the cell from the run's
configuration (the same rows, clean split and flipped labels), refits every scored
route on all of the cell's rows exactly as ``TrustedClassifier``'s final fit does (the
run's estimator, the seed: :func:`sk_l2rw.selection.fit_route`), and judges selection
rules by their test accuracy against the best baseline of the same run:

- the first route in the prior order within one paired standard error of the best mean
  Brier (``TrustedClassifier(average=False)``; it reproduces the run's own refit);
- the mean class probabilities of every route within k standard errors
  (``average=True`` is k = ``SE_MARGIN``);
- the mean of the three routes with the lowest Brier;
- either average, except on trusted rows that look picked per class
  (:func:`sk_l2rw.selection.looks_per_class`), where the single choice is refitted;
- an oracle: the route with the best test accuracy.

Usage::

    python -m benchmarks.tables_average benchmarks/results/tables_trusted/tables.json
    python -m benchmarks.tables_average RUN.json --seeds 5,6 --cache DIR --out DIR
    python -m benchmarks.tables_average --render benchmarks/results/tables_average.json
    python -m benchmarks.tables_average --smoke     # digits, one seed and clean set (CI)

``--cache DIR`` keeps each cell's refitted test probabilities (one ``.npz`` per cell,
named by data set, seed, clean set and noise: one folder per run configuration) and
reuses those already there.
"""

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common.baselines import (TABLE_BASELINES, routes_within_cv, stacked_rows,
                                         trusted_estimator)
from benchmarks.common.protocol import (KIND_NAMES, TablesConfig, clean_split, load_pool,
                                        noisy_labels, prepare, protocol_label)
from benchmarks.common.runner import limited_threads
from benchmarks.environment import (RESULTS, add_report_arguments, load_rows,
                                    report_header, study_command)
from benchmarks.report import markdown_table
from sk_l2rw.selection import SE_MARGIN, fit_route, looks_per_class, route_proba
from sk_l2rw.trusted import check_trusted_fit, default_estimator


def _within_se(cv, counts):
    """Every route within one SE (``average=True``)."""
    return routes_within_cv(cv, SE_MARGIN)


def _lowest3(cv, counts):
    """The three routes with the lowest mean Brier, best first."""
    return sorted(cv, key=lambda t: cv[t][0])[:3]


def _one_if_per_class(rule):
    """``rule``, but the single choice where the trusted rows look picked per class."""
    return lambda cv, counts: (routes_within_cv(cv, SE_MARGIN)[:1]
                               if looks_per_class(counts) else rule(cv, counts))


#: Rule name -> the routes whose mean class probabilities it predicts with, from a
#: row's ``cv_routes`` (route -> mean Brier, mean accuracy, gap, its SE; prior order)
#: and the trusted rows of each class.
RULES = {
    "choose one (average=False)": lambda cv, counts: routes_within_cv(cv, SE_MARGIN)[:1],
    "average within 1 SE (average=True)": _within_se,
    "average within 2 SE": lambda cv, counts: routes_within_cv(cv, 2 * SE_MARGIN),
    "average of the 3 lowest Brier": _lowest3,
    "3 lowest Brier, one if per class": _one_if_per_class(_lowest3),
    "within 1 SE, one if per class": _one_if_per_class(_within_se),
}

#: The routes that train a net (slow to refit).
NETS = ("l2rw_net", "glc_net")

#: The rules the by-seed and by-clean-set tables show beside the run as it ran.
SHOWN = ("average within 1 SE (average=True)", "3 lowest Brier, one if per class")


#: The run judged by default: the committed TrustedClassifier run.
DEFAULT_RUN = RESULTS / "tables_trusted" / "tables.json"


def _shown(path):
    """A run's path as a report names it: relative to the repository when inside."""
    path = Path(path).resolve()
    root = RESULTS.resolve().parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def config_of(saved):
    """The :class:`TablesConfig` a saved run was made with (tuples restored)."""
    config = dict(saved["meta"]["config"])
    config["protocols"] = tuple(tuple(p) for p in config["protocols"])
    fields = {f.name for f in dataclasses.fields(TablesConfig)}
    return TablesConfig(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in config.items() if k in fields})


def _tag(dataset, seed, protocol, size, kind):
    return f"{dataset}_{seed}_{protocol}_{size}_{kind}"


def trusted_counts(data, protocol, seed):
    """The trusted rows of each class in one cell (the clean split alone: no fit),
    for cache files written before the counts were kept."""
    y_clean = clean_split(data["X_train"], data["y_train"], protocol, seed)[3]
    return np.bincount(y_clean, minlength=len(data["classes"]))


def refit_cell(cfg, data, protocol, kind, seed, routes):
    """Every route of ``routes`` fitted on all rows of one cell, as TrustedClassifier's
    final fit: ``(y_test, classes, {route: test class probabilities}, trusted rows of
    each class)``."""
    X, y = data["X_train"], data["y_train"]
    K = len(data["classes"])
    X_rest, y_rest, X_clean, y_clean = clean_split(X, y, protocol, seed)
    y_noisy, _ = noisy_labels(y, y_rest, cfg.rate, kind, seed)
    X_all, y_all, trusted = stacked_rows(X_rest, y_noisy, X_clean, y_clean)
    mask, classes, codes, _ = check_trusted_fit(X_all, y_all, trusted)
    estimator = default_estimator(trusted_estimator(cfg, seed), seed)
    proba = {route: route_proba(fit_route(route, estimator, X_all, codes, mask, seed),
                                data["X_test"], K) for route in routes}
    return data["y_test"], classes, proba, np.bincount(y_clean, minlength=K)


def _probabilities(cfg, wanted, cache, log):
    """Test probabilities of every route of every wanted row, and the cell's trusted
    rows of each class, cell by cell; from ``cache`` where it has them (a cache file
    without the counts has them recomputed)."""
    held = {}  # the last data set's pool and the last (data set, seed)'s splits

    def cell_data(name, seed):
        if held.get("name") != name:
            held.clear()
            held.update(name=name, pool=load_pool(name))
        if held.get("seed") != seed:
            held.update(seed=seed, data=prepare(name, held["pool"], cfg.datasets[name], seed))
        return held["data"]

    found = {}
    order = sorted(wanted, key=lambda r: (list(cfg.datasets).index(r["dataset"]), r["seed"]))
    for r in order:
        name, seed, key = r["dataset"], r["seed"], (r["protocol"], r["size"], r["kind"])
        path = None if cache is None else Path(cache) / f"{_tag(name, seed, *key)}.npz"
        if path is not None and path.exists():
            z = np.load(path)
            if all(f"p_{t}" in z.files for t in r["cv_routes"]):
                counts = (z["counts"] if "counts" in z.files
                          else trusted_counts(cell_data(name, seed), key[:2], seed))
                found[(name, seed) + key] = (z["y_test"], z["classes"], {
                    t: z[f"p_{t}"] for t in r["cv_routes"]}, counts)
                continue
        data = cell_data(name, seed)
        start = time.perf_counter()
        y_test, classes, proba, counts = refit_cell(cfg, data, key[:2], key[2], seed,
                                                    list(r["cv_routes"]))
        log(f"{_tag(name, seed, *key)}: {time.perf_counter() - start:.0f} s")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, y_test=y_test, classes=classes, counts=counts,
                                **{f"p_{t}": p.astype(np.float32) for t, p in proba.items()})
        found[(name, seed) + key] = (y_test, classes, proba, counts)
    return found


def judge(saved, seeds=None, cache=None, log=print, smoke=False, method="trusted"):
    """One row per judged TrustedClassifier row: each rule's routes and test accuracy,
    every route's, the run's own, and the best baseline's (accuracies in [0, 1]).
    ``smoke``: the digits rows of the first seed and clean set only. ``method``:
    ``"trusted_prior"`` judges the rows fitted with ``class_prior`` (their routes'
    refits are the same; the trusted-CV figures that pick them differ)."""
    rows = saved["rows"]
    wanted = [r for r in rows if r["method"] == method and r.get("cv_routes")
              and "error" not in r and (seeds is None or r["seed"] in seeds)]
    if smoke:
        first = next(r for r in wanted if r["dataset"] == "digits")
        wanted = [r for r in wanted if r["dataset"] == "digits" and all(
            r[k] == first[k] for k in ("seed", "protocol", "size"))]
    baselines = {}
    for r in rows:
        if r["method"] in TABLE_BASELINES and "error" not in r and r.get("acc") is not None:
            cell = (r["dataset"], r["seed"], r["protocol"], r["size"])
            kinds = [r["kind"]] if r["kind"] != "*" else list(KIND_NAMES)
            for kind in kinds:
                baselines.setdefault(cell + (kind,), {})[r["method"]] = r["acc"]
    with limited_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        proba = _probabilities(config_of(saved), wanted, cache, log)
    out = []
    for r in wanted:
        key = (r["dataset"], r["seed"], r["protocol"], r["size"], r["kind"])
        y_test, classes, P, counts = proba[key]
        accuracy = {t: float(np.mean(classes[p.argmax(axis=1)] == y_test))
                    for t, p in P.items()}
        judged = {}
        for name, rule in RULES.items():
            chosen = rule(r["cv_routes"], counts)
            mean = np.mean([P[t] for t in chosen], axis=0)
            judged[name] = ["+".join(chosen),
                            float(np.mean(classes[mean.argmax(axis=1)] == y_test))]
        # The run's own choice refitted: its test accuracy again, to the last row.
        own = np.mean([P[t] for t in r["route"].split("+")], axis=0)
        out.append(dict(dataset=key[0], seed=key[1], protocol=key[2], size=key[3],
                        kind=key[4], n_clean=r.get("n_clean"),
                        per_class=looks_per_class(counts),
                        best=max(baselines[key].values()), baselines=baselines[key],
                        as_run=r["acc"], route=r["route"],
                        refitted=float(np.mean(classes[own.argmax(axis=1)] == y_test)),
                        routes=accuracy, rules=judged))
    return out


def _summary(points):
    d = np.array(points)
    return [str(len(d)), f"{d.mean():+.2f}", str(int((d >= -1).sum())),
            str(int((d < -3).sum())), str(int((d > 0).sum()))]


def rule_points(rows):
    """Rule name -> points (accuracy minus the best baseline's, x 100) per row: the
    rules, the run as it ran, and the oracle among the routes."""
    points = {"as run": [100 * (r["as_run"] - r["best"]) for r in rows]}
    for name in RULES:
        points[name] = [100 * (r["rules"][name][1] - r["best"]) for r in rows]
    points["oracle (the best route by test)"] = [
        100 * (max(r["routes"].values()) - r["best"]) for r in rows]
    return points


def cell_goals(rows):
    """Issue 29's goals on cell means over the judged seeds, per rule: a rule's mean
    test accuracy in a cell (data set, clean set, noise) against the baseline with
    the best mean there (``tables.trusted_goals``' reading). Rule name -> (cells,
    within 1 point, more than 3 behind, better than every baseline)."""
    cells = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["protocol"], r["size"], r["kind"]), []).append(r)
    names = ["as run", *RULES]
    counts = {name: [0, 0, 0, 0] for name in names}
    for found in cells.values():
        methods = set.intersection(*(set(r["baselines"]) for r in found))
        best = max(np.mean([r["baselines"][m] for r in found]) for m in methods)
        for name in names:
            own = np.mean([r["as_run"] if name == "as run" else r["rules"][name][1]
                           for r in found])
            margin = 100 * (own - best)
            tally = counts[name]
            tally[0] += 1
            tally[1] += margin >= -1
            tally[2] += margin < -3
            tally[3] += margin > 0
    return {name: tuple(int(v) for v in tally) for name, tally in counts.items()}


def report(saved):
    """The Markdown report of a run of :func:`judge`."""
    meta = dict(saved["meta"])
    source, smoke = meta.pop("source"), meta.pop("smoke", False)
    method = meta.pop("method", "trusted")
    rows = saved["rows"]
    lines = report_header("Average the routes the trusted rows cannot tell apart?", **meta)
    if smoke:
        lines += ["**A `--smoke` run (digits, one seed and clean set): it only shows that "
                  "the script runs.**", ""]
    same = sum(abs(r["refitted"] - r["as_run"]) < 1e-9 for r in rows)
    if method != "trusted":
        lines += [f"**The run's `{method}` rows** (TrustedClassifier given the "
                  f"population's class shares).", ""]
    lines += [f"Generated by `benchmarks/tables_average.py` from `{source}` (its docstring "
              f"says what is refitted); the reading is in `docs/findings/tables.md`. "
              f"The run's own choice, refitted, reproduces its test accuracy in {same} "
              f"of {len(rows)} rows.", ""]
    header = ["rule", "rows", "mean vs best baseline (points)", "within 1 point",
              "more than 3 behind", "better than every baseline"]
    points = rule_points(rows)
    lines += ["## Every judged row", ""]
    lines += markdown_table(header, [[name] + _summary(v) for name, v in points.items()])
    lines += ["", "## What each rule refits", "",
              "Routes refitted on all rows after the trusted CV (the final fit's cost), "
              "and the rows where one of them is a net (`l2rw_net`, `glc_net`: the slow "
              "routes).", ""]
    body = []
    for name in RULES:
        refits = [r["rules"][name][0].split("+") for r in rows]
        body.append([name, f"{np.mean([len(t) for t in refits]):.2f}",
                     str(max(len(t) for t in refits)),
                     str(sum(any(t in NETS for t in ts) for ts in refits))])
    lines += markdown_table(["rule", "routes refitted (mean)", "most",
                             "rows refitting a net"], body)
    seeds = sorted({r["seed"] for r in rows})
    lines += ["", f"## The issue's goals, on cell means over seeds {seeds}", "",
              "Each rule's mean test accuracy in a cell (data set, clean set, noise) "
              "against the baseline with the best mean there.", ""]
    lines += markdown_table(
        ["rule", "cells", "within 1 point", "more than 3 behind",
         "better than every baseline"],
        [[name, *map(str, tally)] for name, tally in cell_goals(rows).items()])
    for title, part, order in (
            ("seed", lambda r: r["seed"], sorted),
            ("clean set", lambda r: protocol_label((r["protocol"], r["size"])), list)):
        lines += ["", f"## By {title}", ""]
        body = []
        for value in order(dict.fromkeys(part(r) for r in rows)):
            index = [i for i, r in enumerate(rows) if part(r) == value]
            for name, v in points.items():
                if name == "as run" or name in SHOWN:
                    body.append([f"{value}: {name}"] + _summary([v[i] for i in index]))
        lines += markdown_table(header, body)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path, default=DEFAULT_RUN,
                        help="a tables.json whose rows kept cv_routes (default: "
                             "results/tables_trusted/tables.json)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    parser.add_argument("--cache", default=None,
                        help="folder of refitted test probabilities, one per run "
                             "configuration (a cell's file is named by its data set, "
                             "seed, clean set and noise only)")
    parser.add_argument("--method", default="trusted", choices=("trusted", "trusted_prior"),
                        help="the run's TrustedClassifier rows to judge (trusted_prior: "
                             "fitted with class_prior, per-class clean sets only; "
                             "written as tables_average_prior.{json,md})")
    add_report_arguments(parser, "tables_average.md",
                         smoke="digits, the first seed and clean set of the run only "
                               "(bundled data: nothing downloaded)")

    def measure(args):
        seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
        rows = judge(load_rows(args.run), seeds, args.cache, smoke=args.smoke,
                     method=args.method)
        return rows, dict(source=_shown(args.run), smoke=args.smoke, method=args.method)

    return study_command("tables_average", parser, argv, report, measure,
                         name=lambda args: "tables_average" + (
                             "_prior" if args.method == "trusted_prior" else ""))


if __name__ == "__main__":
    main()
