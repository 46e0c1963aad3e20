"""Win on tables: the routes a tabular user can take, against every baseline.

For each data set, noise kind (UniformFlip, BackgroundFlip, PairFlip at 40%) and
clean-set protocol, every method below is fitted in the same run on the same rows:

- clean-set protocols: ``per_class`` (10 trusted rows per class, the paper's and
  quality.md's protocol: balanced even where the population is not) and ``audit``
  (a random sample of the training rows with their true labels, 200 rows and 1% of
  the rows: what a practitioner who audits part of a table gets; the clean set then
  has the population's class prior);
- baselines: skorch's ``NeuralNetClassifier`` on the noisy rows and on noisy + clean
  rows, the same net on the clean rows only, cleanlab's ``CleanLearning`` around the
  net and around ``HistGradientBoostingClassifier``, and HGB on noisy + clean rows;
- routes: ``L2RWClassifier`` as in the paper; with ``clean_class_weight`` aimed at the
  population prior (per_class protocol only: the audit clean set has that prior
  already); with ``train_on_clean=True``; and
  ``ReweightedClassifier(HistGradientBoostingClassifier())``;
- ``recommended``: the route README's "Which route" prescribes for the cell, chosen
  by a rule fixed before any test score was seen (:func:`recommended_method`).

Every net is :class:`sk_l2rw.modules.MLP` with one hidden layer of 256 ReLU units,
cross-entropy, ``Adam(lr=1e-3)``, batch 128, 20 epochs or 200 steps if more (the
quality benchmark's setting); HGB is ``HistGradientBoostingClassifier(max_iter=100,
early_stopping=True)``. Accuracy is the headline metric, balanced accuracy beside it.

Writes ``tables.md``, its rows ``tables.json`` and the figure ``tables.png`` into
``--out`` (default ``results/``; a ``--smoke`` run writes into a new temporary folder
unless given one). The JSON holds ``{"meta", "rows"}``: every per-seed row, and the
run's record (:func:`benchmarks.environment.run_record`: command, started, elapsed,
load, machine, versions; then ``config`` and ``jobs``, and ``merged`` or ``joined``
where the rows come from other runs). Rows saved in the layout before that record
(``meta.load_end``) are read as well (:func:`upgrade`). ``--render JSON`` rebuilds
the report and the figure from the rows.

Usage::

    python -m benchmarks.tables            # full run (about 70 min on 2 cores)
    python -m benchmarks.tables --quick    # every data set, small; under 5 minutes
    python -m benchmarks.tables --smoke    # digits only, no download (CI)
    python -m benchmarks.tables --render benchmarks/results/tables.json
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import datasets as bench_data
from benchmarks.common.methods import have_cleanlab, metrics
from benchmarks.common.protocol import (KIND_NAMES, clean_split, load_pool, noisy_labels,
                                        prepare, prior_weights, protocol_label)
# The tables protocol lives in the common base (tables_balance shares it).
from benchmarks.common.protocol import TABLES_SIZES as FULL_SIZES
from benchmarks.common.protocol import TablesConfig as Config
from benchmarks.common.protocol import tables_full_config as full_config
from benchmarks.common.protocol import tables_smoke_config as smoke_config
from benchmarks.common.runner import execute, limited_threads
from benchmarks.common.baselines import (TABLE_BASELINES, Timer, fit_cleanlab,
                                         fit_glc_hgb, fit_glc_net, fit_irbl_hgb, fit_l2rw,
                                         fit_net, fit_reweighted, fit_trusted, hgb, net,
                                         routes_within_cv)
from benchmarks.environment import (add_jobs_argument, add_out_argument, chosen_names,
                                    command_line, load_rows, parse_run_arguments,
                                    report_header, rerender, run_record, worker_count,
                                    write_report)
from benchmarks.report import markdown_table, percent
from sk_l2rw.selection import SE_MARGIN

#: Data sets whose rows are tables of measured features; the others are pixels.
TABULAR = ("adult", "kdd_census", "letter")

METHODS = {
    "plain_noisy": "plain (noisy)",
    "plain_both": "plain (noisy+clean)",
    "clean_only": "clean only",
    "cleanlab": "cleanlab (net)",
    "cleanlab_hgb": "cleanlab (HGB)",
    "hgb": "HGB (noisy+clean)",
    "l2rw": "L2RW (paper)",
    "l2rw_prior": "L2RW, prior weights",
    "l2rw_toc": "L2RW, train_on_clean",
    "reweighted_hgb": "Reweighted HGB",
    "glc_hgb": "GLC (HGB plug-in)",
    "glc_net": "GLC (net, corrected loss)",
    "irbl_hgb": "IRBL (HGB)",
    "trusted": "TrustedClassifier",
    "trusted_prior": "TrustedClassifier(class_prior)",
    "ceiling": "ceiling (net, true labels)",
}
BASELINES = TABLE_BASELINES
ROUTES = ("l2rw", "l2rw_prior", "l2rw_toc", "reweighted_hgb", "trusted", "trusted_prior")


def quick_config():
    return Config(
        mode="quick", seeds=(0,),
        # 2,000 training rows of each table set: the comparison with HGB is the point
        datasets={**bench_data.QUICK_SIZES, "letter": (2000, 1000), "adult": (2000, 1000),
                  "kdd_census": (2000, 1000)},
        kinds=("uniform", "background"), protocols=(("per_class", 10), ("audit", 200)),
        epochs=10, min_steps=60, cv_folds=2, hgb_max_iter=30)


def reduced_config():
    """What one session's two cores could run with TrustedClassifier (about an hour):
    one seed, the four data sets with at most 5,000 training rows each, every
    noise kind and clean-set protocol of the full run, the full run's setting."""
    return Config(mode="reduced", seeds=(0,),
                  datasets={"digits": (None, None), "letter": (5000, 5000),
                            "adult": (5000, 5000), "kdd_census": (5000, 5000)})


# ---------------------------------------------------------------------------
# The rule (fixed before any score of this benchmark was seen)
# ---------------------------------------------------------------------------


def recommended_method(dataset, protocol, rows=()):
    """The route README's "Which route" prescribes: ``TrustedClassifier()``.

    Rows written before it existed (the committed ``tables.json`` of 2026-12-01)
    were judged by the earlier rule, which their report keeps:

    Tables of measured features (adult, kdd_census, letter): gradient boosting on
    L2RW's weights, ``ReweightedClassifier(HistGradientBoostingClassifier())``.
    Pixels (digits, mnist, fashion_mnist): ``L2RWClassifier(MLP,
    train_on_clean=True)``. A clean set drawn per class stands for the population
    through ``clean_class_weight = prior / clean share``; a random audit needs none.
    Both routes in this benchmark already carry those weights under the per_class
    protocol, so the protocol does not change the choice of route.
    """
    del protocol  # the class weights, not the route, follow the protocol
    if any(r["method"] == "trusted" for r in rows):
        return "trusted"
    return "reweighted_hgb" if dataset in TABULAR else "l2rw_toc"


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


def parse_protocol(text):
    """``"per_class:10"`` -> ``("per_class", 10)``; ``"audit:0.01"`` -> a share."""
    kind, _, size = text.strip().partition(":")
    if kind not in ("per_class", "audit") or not size:
        raise ValueError(f"a protocol is per_class:N, audit:N or audit:SHARE; got {text!r}")
    value = float(size)
    return kind, (int(value) if value >= 1 and value == int(value) else value)


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------


def cell_methods(cfg, key, X, y_noisy, flipped, X_clean, y_clean, X_test, y_test, K,
                 seed, prior):
    """Every baseline and route on one (data set, protocol, noise) cell."""
    rows = []

    def record(method, fit):
        if cfg.methods and method not in cfg.methods:
            return None
        try:
            with Timer() as t:
                model = fit()
        except ValueError as exc:  # a method refusing the cell (GLC without a
            # trusted row of every class): recorded, and left out of the means
            rows.append(dict(key, method=method, error=f"{type(exc).__name__}: {exc}"))
            return None
        rows.append(dict(key, method=method, wall_s=round(t.wall, 3),
                         **metrics(model, X_test, y_test, max_share=False)))
        return model

    X_both = np.vstack([X, X_clean])
    y_both = np.concatenate([y_noisy, y_clean])
    weights = prior_weights(prior, y_clean) if key["protocol"] == "per_class" else None
    options = {} if weights is None else {"clean_class_weight": weights}
    record("plain_noisy", lambda: fit_net(cfg, X, y_noisy, K, seed))
    record("plain_both", lambda: fit_net(cfg, X_both, y_both, K, seed))
    if have_cleanlab():
        clf = net(cfg, X.shape[1], K, len(y_both))
        record("cleanlab", lambda: fit_cleanlab(cfg, clf, X_both, y_both, seed))
        record("cleanlab_hgb", lambda: fit_cleanlab(cfg, hgb(cfg, seed), X_both, y_both,
                                                    seed))
    record("hgb", lambda: hgb(cfg, seed).fit(X_both, y_both))
    record("glc_hgb", lambda: fit_glc_hgb(cfg, X, y_noisy, X_clean, y_clean, seed))
    record("glc_net", lambda: fit_glc_net(cfg, X, y_noisy, X_clean, y_clean, K, seed))
    model = record("irbl_hgb", lambda: fit_irbl_hgb(cfg, X, y_noisy, X_clean, y_clean,
                                                     seed))
    if model is not None:
        rows[-1].update(_weight_stats(model.sample_weight_[:len(y_noisy)], flipped))
    for method, extra in (("l2rw", {}), ("l2rw_prior", options),
                          ("l2rw_toc", dict(options, train_on_clean=True))):
        if method == "l2rw_prior" and weights is None:
            continue
        model = record(method, lambda extra=extra: fit_l2rw(cfg, X, y_noisy, X_clean,
                                                          y_clean, K, seed, **extra))
        if model is not None:
            rows[-1].update(_weight_stats(np.nanmean(model.sample_weights_, axis=0),
                                          flipped))
    model = record("reweighted_hgb", lambda: fit_reweighted(
        cfg, X, y_noisy, X_clean, y_clean, seed, clean_class_weight=weights))
    if model is not None:
        rows[-1].update(_weight_stats(model.sample_weight_, flipped))
    model = record("trusted", lambda: fit_trusted(cfg, X, y_noisy, X_clean, y_clean, seed))
    if model is not None:
        rows[-1].update(_chosen(model))
    if weights is not None:  # trusted rows picked per class: a user knows the base rate
        model = record("trusted_prior", lambda: fit_trusted(
            cfg, X, y_noisy, X_clean, y_clean, seed, class_prior=prior))
        if model is not None:
            rows[-1].update(_chosen(model))
    return rows


def _chosen(model):
    """The route TrustedClassifier chose (routes it averages joined by "+"), the
    trusted-CV accuracy estimate of what predicts, and every scored route's trusted-CV
    figures (``cv_routes``: route -> mean Brier, mean accuracy, Brier gap to the best
    and the gap's standard error), so that another selection rule can be judged on
    the saved rows without refitting."""
    results = model.cv_results_
    if not results:
        return dict(route=model.route_, cv_acc=None)
    routes = {str(r): [round(float(results[k][i]), 6)
                       for k in ("mean_brier", "mean_accuracy", "gap", "gap_se")]
              for i, r in enumerate(results["route"])}
    return dict(route=model.route_, cv_acc=float(model.cv_accuracy_), cv_routes=routes)


def _weight_stats(weights, flipped):
    """Mean weight of flipped rows over that of intact ones; share of zero weights."""
    intact = weights[~flipped].mean()
    ratio = float(weights[flipped].mean() / intact) if intact > 0 else float("nan")
    return dict(weight_ratio=ratio, zero_share=float(np.mean(weights == 0)))


def dataset_task(cfg, name, seed, data, threads=1):
    """Every protocol and noise kind of one data set and seed (one worker)."""
    with limited_threads(threads):
        X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        K = len(data["classes"])
        prior = np.bincount(y, minlength=K) / len(y)
        base = dict(dataset=name, seed=seed, n_train=len(y), n_test=len(y_te))
        rows = []
        if not cfg.methods or "ceiling" in cfg.methods:
            with Timer() as t:
                model = fit_net(cfg, X, y, K, seed)
            rows.append(dict(base, protocol="*", size=None, kind="*", method="ceiling",
                             wall_s=round(t.wall, 3),
                             **metrics(model, X_te, y_te, max_share=False)))
        for protocol in cfg.protocols:
            X_rest, y_rest, X_clean, y_clean = clean_split(X, y, protocol, seed)
            key = dict(base, protocol=protocol[0], size=protocol[1], n_clean=len(y_clean))
            if not cfg.methods or "clean_only" in cfg.methods:
                with Timer() as t:
                    model = fit_net(cfg, X_clean, y_clean, K, seed)
                rows.append(dict(key, kind="*", method="clean_only", wall_s=round(t.wall, 3),
                                 **metrics(model, X_te, y_te, max_share=False)))
            for kind in cfg.kinds:
                y_noisy, flipped = noisy_labels(y, y_rest, cfg.rate, kind, seed)
                rows += cell_methods(cfg, dict(key, kind=kind), X_rest, y_noisy, flipped,
                                     X_clean, y_clean, X_te, y_te, K, seed, prior)
        return rows


def plan(cfg, log=print):
    tasks = []
    for name, size in cfg.datasets.items():
        start = time.perf_counter()
        pool = load_pool(name)
        log(f"loaded {name} in {time.perf_counter() - start:.1f} s")
        for seed in cfg.seeds:
            data = prepare(name, pool, size, seed)
            weight = len(data["y_train"]) * len(data["classes"]) ** 0.5
            tasks.append((weight, f"{name} seed {seed}", dataset_task,
                          (cfg, name, seed, data)))
    tasks.sort(key=lambda t: -t[0])  # longest first: better packing on the workers
    return [(label, fn, args) for _, label, fn, args in tasks]


def run(cfg, *, jobs=1, log=print, command=None):
    """Fit everything.

    Parameters
    ----------
    cfg : Config
    jobs : int
        Worker processes.
    log : callable
    command : str or None
        The command line the record names; None: the one of ``cfg``'s mode
        (``python -m benchmarks.tables --smoke``...), for a run started from Python.

    Returns
    -------
    rows : list of dict
    meta : dict
        The run's record (:func:`benchmarks.environment.run_record`, read as the
        run ends) with its ``config`` and ``jobs``.
    """
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    rows = execute(plan(cfg, log=log), jobs=jobs, log=log)
    if command is None:
        command = command_line("tables", [] if cfg.mode == "full" else [f"--{cfg.mode}"])
    meta = run_record(command, started, time.perf_counter() - t0,
                      config=dataclasses.asdict(cfg), jobs=jobs)
    return rows, meta


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _select(rows, **key):
    """The rows of a key; a method's refusals of a cell (``error``) are not scores."""
    return [r for r in rows if "error" not in r and all(r.get(k) == v
                                                        for k, v in key.items())]


def cell_values(rows, dataset, protocol, kind, method, metric="acc"):
    """Per-seed scores of one method in one cell (ceiling and clean-only rows hold
    for every noise kind; ``recommended`` is the rule's route)."""
    if method == "recommended":
        method = recommended_method(dataset, protocol, rows)
    if method == "ceiling":
        found = _select(rows, dataset=dataset, method="ceiling")
    elif method == "clean_only":
        found = _select(rows, dataset=dataset, protocol=protocol[0], size=protocol[1],
                        method="clean_only")
    else:
        found = _select(rows, dataset=dataset, protocol=protocol[0], size=protocol[1],
                        kind=kind, method=method)
    return [r[metric] for r in sorted(found, key=lambda r: r["seed"])]


def cell_summary(rows, dataset, protocol, kind, metric="acc"):
    """Means per method, the best baseline, and the recommended route's margin."""
    means = {}
    for method in (*METHODS, "recommended"):
        values = cell_values(rows, dataset, protocol, kind, method, metric)
        if values:
            means[method] = (float(np.mean(values)), float(np.std(values)), len(values))
    baselines = {m: means[m][0] for m in BASELINES if m in means}
    best = max(baselines, key=baselines.get) if baselines else None
    margin = (means["recommended"][0] - baselines[best]
              if best and "recommended" in means else float("nan"))
    return means, best, margin


def datasets_of(rows):
    return list(dict.fromkeys(r["dataset"] for r in rows))


def protocols_of(rows):
    seen = dict.fromkeys((r["protocol"], r["size"]) for r in rows if r["protocol"] != "*")
    return [(p, s) for p, s in seen]


def kinds_of(rows):
    return [k for k in KIND_NAMES if any(r["kind"] == k for r in rows)]


def cells_of(rows):
    """Every (data set, protocol, noise kind) of the rows, in report order."""
    return [(d, p, k) for d in datasets_of(rows) for p in protocols_of(rows)
            for k in kinds_of(rows)]


def cell_tables(rows, metric):
    lines = []
    for protocol in protocols_of(rows):
        for kind in kinds_of(rows):
            methods = [m for m in METHODS if any(
                cell_values(rows, d, protocol, kind, m) for d in datasets_of(rows))]
            body = []
            for d in datasets_of(rows):
                means, best, margin = cell_summary(rows, d, protocol, kind, metric)
                if best is None:
                    continue
                top = max(means[m][0] for m in (*BASELINES, *ROUTES) if m in means)
                cells = []
                for m in methods:
                    text = percent(*means[m]) if m in means else "–"
                    if m in means and means[m][0] == top and m != "ceiling":
                        text = f"**{text}**"
                    cells.append(text)
                body.append([d, METHODS[recommended_method(d, protocol, rows)]] + cells
                            + [f"{100 * margin:+.1f} ({METHODS[best]})"])
            name = "accuracy" if metric == "acc" else "balanced accuracy"
            lines += ["", f"### {KIND_NAMES[kind]} {40}%, {protocol_label(protocol)}: "
                      f"test {name} (%)", ""]
            lines += markdown_table(["data set", "recommended"] + [METHODS[m] for m in methods]
                            + ["recommended − best baseline (points)"], body)
    return lines


def goals(rows):
    """The issue's goals, judged on means over seeds (accuracy)."""
    cells, behind = [], []
    uniform_ok, uniform_detail = True, []
    tab_ok, tab_detail = True, []
    for d in datasets_of(rows):
        for protocol in protocols_of(rows):
            for kind in kinds_of(rows):
                means, best, margin = cell_summary(rows, d, protocol, kind)
                if best is None or not math.isfinite(margin):
                    continue
                cells.append(margin > 0)
                label = f"{d}, {KIND_NAMES[kind]}, {protocol_label(protocol)}"
                if margin < -0.01:
                    behind.append(f"{label}: {100 * margin:+.1f} ({METHODS[best]})")
                if kind == "uniform":
                    ok = margin >= -0.01
                    uniform_ok &= ok
                    if not ok:
                        uniform_detail.append(f"{label} {100 * margin:+.1f}")
                if (d in ("adult", "kdd_census") and kind in ("background", "pair")
                        and protocol[0] == "audit"):
                    gain = means["recommended"][0] - means["hgb"][0]
                    ok = gain >= 0.01
                    tab_ok &= ok
                    tab_detail.append(f"{label} {100 * gain:+.1f}{'' if ok else ' ✗'}")
    share = float(np.mean(cells)) if cells else float("nan")
    body = [
        ["recommended route beats every baseline in ≥ 80% of the cells",
         f"{sum(cells)} of {len(cells)} ({100 * share:.0f}%)",
         "PASS" if share >= 0.8 else "FAIL"],
        ["... and is never more than 1 point behind the best baseline",
         "; ".join(behind) or "never behind by more than 1 point",
         "PASS" if not behind else "FAIL"],
        ["UniformFlip: within 1 point of the best baseline, or better, everywhere",
         "; ".join(uniform_detail) or "every cell",
         "PASS" if uniform_ok else "FAIL"],
        ["adult and kdd_census, BackgroundFlip/PairFlip, audit: ≥ HGB + 1 point",
         "; ".join(tab_detail) or "n/a", "PASS" if tab_ok and tab_detail else "FAIL"],
    ]
    return markdown_table(["goal", "numbers (points)", "verdict"], body)


# The baseline fitted the way each TrustedClassifier route fits: a replay judges a
# route it chose by that baseline's test score (separate fits: an approximation).
ROUTE_BASELINES = {"mixed": "hgb", "pruned": "cleanlab_hgb", "glc": "glc_hgb",
                   "glc_net": "glc_net", "irbl": "irbl_hgb", "reweighted": "reweighted_hgb",
                   "l2rw_net": "l2rw", "trusted_only": "clean_only"}


def first_within(k):
    """The rule "the first route in the prior order whose Brier gap to the best is at
    most ``k`` paired standard errors" (TrustedClassifier's is
    ``k=sk_l2rw.selection.SE_MARGIN``), on a row's ``cv_routes`` (route -> mean
    Brier, mean accuracy, gap, its SE; prior order)."""
    return lambda cv: routes_within_cv(cv, k)[0]


def _margin_name(k):
    return f"first within {k:g} SE, prior order" + (" (the rule)" if k == SE_MARGIN else "")


REPLAY_RULES = {
    **{_margin_name(k): first_within(k) for k in dict.fromkeys((SE_MARGIN, 1, 2, 0.5))},
    "lowest Brier": lambda cv: min(cv, key=lambda r: cv[r][0]),
    "highest accuracy": lambda cv: max(cv, key=lambda r: (cv[r][1], -cv[r][0])),
}


def replay_rules(rows, rules=None):
    """Replay selection rules on a run's saved rows, without refitting.

    For every ``trusted`` row that kept ``cv_routes`` (one cell and seed where a
    choice was made), each rule picks a route from the trusted-CV figures; the pick
    is judged by the test accuracy of the baseline fitted the same way
    (:data:`ROUTE_BASELINES`), minus the cell's best baseline's.

    Parameters
    ----------
    rows : list of dict
    rules : dict or None
        Name -> ``rule(cv_routes) -> route``; default :data:`REPLAY_RULES`.

    Returns
    -------
    dict
        Name -> list of points (accuracy difference x 100), one per replayed row, None
        where the picked route's baseline has no score; also ``"as run"`` (the
        refitted choice's own test score) and ``"oracle among the scored routes"``.
    """
    rules = REPLAY_RULES if rules is None else rules
    scores = collections.defaultdict(dict)
    for r in rows:
        if "error" not in r and r.get("acc") is not None and "protocol" in r:
            scores[(r["dataset"], r["seed"], r["protocol"], r["size"], r["kind"])][
                r["method"]] = r["acc"]
    out = {"as run": [], **{name: [] for name in rules}, "oracle among the scored routes": []}
    for r in rows:
        if r["method"] != "trusted" or not r.get("cv_routes") or "error" in r:
            continue
        cell = (r["dataset"], r["seed"], r["protocol"], r["size"])
        # clean-only rows hold for every noise kind ("*")
        found = {**scores[cell + ("*",)], **scores[cell + (r["kind"],)]}
        best = max(found[m] for m in BASELINES if m in found)
        test = {route: found.get(b) for route, b in ROUTE_BASELINES.items()}
        points = lambda acc: None if acc is None else 100 * (acc - best)  # noqa: E731
        out["as run"].append(points(r["acc"]))
        for name, rule in rules.items():
            out[name].append(points(test.get(rule(r["cv_routes"]))))
        scored = [test[t] for t in r["cv_routes"] if test.get(t) is not None]
        out["oracle among the scored routes"].append(points(max(scored)) if scored
                                                     else None)
    return out


def replay_table(replayed):
    """:func:`replay_rules`' result as Markdown lines: mean, within 1, more than 3."""
    body = []
    for name, values in replayed.items():
        d = np.array([v for v in values if v is not None])
        body.append([name, str(len(d)), f"{d.mean():+.2f}" if len(d) else "-",
                     str(int((d >= -1).sum())), str(int((d < -3).sum()))])
    return markdown_table(["rule", "rows", "mean vs best baseline (points)",
                           "within 1 point", "more than 3 behind"], body)


def trusted_goals(rows):
    """Issue 29's goals for ``TrustedClassifier()``, on means over seeds (accuracy)."""
    margins, labels, gaps = [], [], []
    for d, protocol, kind in cells_of(rows):
        means, best, margin = cell_summary(rows, d, protocol, kind)
        if best is None or not math.isfinite(margin):
            continue
        margins.append(margin)
        labels.append(f"{d}, {KIND_NAMES[kind]}, {protocol_label(protocol)}: "
                      f"{100 * margin:+.1f} ({METHODS[best]})")
        if protocol == ("audit", 200):
            gaps += [abs(r["cv_acc"] - r["acc"]) for r in _select(
                rows, dataset=d, protocol="audit", size=200, kind=kind,
                method="trusted") if r.get("cv_acc") is not None]
    margins = np.array(margins)
    within = float(np.mean(margins >= -0.01)) if len(margins) else float("nan")
    beats = float(np.mean(margins > 0)) if len(margins) else float("nan")
    far = [label for label, m in zip(labels, margins) if m < -0.03]
    gap = float(np.mean(gaps)) if gaps else float("nan")
    body = [
        ["within 1 point of the best baseline in ≥ 90% of the cells",
         f"{int(np.sum(margins >= -0.01))} of {len(margins)} ({100 * within:.0f}%)",
         "PASS" if within >= 0.9 else "FAIL"],
        ["never more than 3 points behind", "; ".join(far) or "never",
         "PASS" if not far else "FAIL"],
        ["better than every baseline in ≥ 50% of the cells",
         f"{int(np.sum(margins > 0))} of {len(margins)} ({100 * beats:.0f}%)",
         "PASS" if beats >= 0.5 else "FAIL"],
        ["audit of 200 rows: trusted-CV accuracy within 3 points of the test "
         "accuracy on average", f"mean abs(CV − test) {100 * gap:.1f} over {len(gaps)} fits",
         "PASS" if gap <= 0.03 else "FAIL"],
    ]
    return markdown_table(["goal", "numbers (points)", "verdict"], body)


def chosen_table(rows, method="trusted"):
    """Per cell: the route TrustedClassifier chose in each seed, its trusted-CV
    accuracy estimate beside the test accuracy, and its fit time against HGB's."""
    body = []
    for d, protocol, kind in cells_of(rows):
        key = dict(dataset=d, protocol=protocol[0], size=protocol[1], kind=kind)
        found = sorted(_select(rows, method=method, **key), key=lambda r: r["seed"])
        if not found:
            continue
        hgb_s = np.median([r["wall_s"] for r in _select(rows, method="hgb", **key)])
        cv = [r["cv_acc"] for r in found if r.get("cv_acc") is not None]
        body.append([d, protocol_label(protocol), KIND_NAMES[kind],
                     ", ".join(r["route"] for r in found),
                     f"{100 * np.mean(cv):.1f}" if cv else "–",
                     f"{100 * np.mean([r['acc'] for r in found]):.1f}",
                     f"{np.median([r['wall_s'] for r in found]) / hgb_s:.0f}x"])
    return markdown_table(["data set", "clean set", "noise", "route chosen (per seed)",
                           "trusted-CV accuracy", "test accuracy",
                           "fit time / HGB's"], body)


def weights_table(rows):
    body = []
    for d in datasets_of(rows):
        for protocol in protocols_of(rows):
            for kind in kinds_of(rows):
                found = _select(rows, dataset=d, protocol=protocol[0], size=protocol[1],
                                kind=kind, method="reweighted_hgb")
                if found:
                    ratio = np.nanmean([r["weight_ratio"] for r in found])
                    zeros = np.mean([r["zero_share"] for r in found])
                    body.append([d, protocol_label(protocol), KIND_NAMES[kind],
                                 f"{ratio:.2f}", f"{100 * zeros:.0f}%"])
    return markdown_table(["data set", "clean set", "noise", "flipped / intact mean weight",
                   "rows at weight 0"], body)


def time_table(rows):
    body = []
    for d in datasets_of(rows):
        stats = []
        for m in ("plain_noisy", "cleanlab", "cleanlab_hgb", "hgb", "l2rw", "l2rw_toc",
                  "reweighted_hgb"):
            found = _select(rows, dataset=d, method=m)
            stats.append(f"{np.median([r['wall_s'] for r in found]):.1f}" if found else "–")
        body.append([d] + stats)
    return markdown_table(["data set", "plain", "cleanlab (net)", "cleanlab (HGB)", "HGB",
                   "L2RW", "L2RW train_on_clean", "Reweighted HGB"], body)


def render(rows, meta, command):
    """The Markdown report: only what the rows say."""
    cfg = meta["config"]
    started = datetime.datetime.fromisoformat(meta["started"])
    lines = report_header("sk_l2rw tables benchmark: routes for tabular users",
                          command=command, started=started, elapsed=meta["elapsed"],
                          smoke=cfg["mode"] == "smoke",
                          load=meta.get("load", "not recorded"),
                          # Rows written before the run kept these: the renderer's.
                          machine=meta.get("machine"), versions=meta.get("versions"))
    sizes = ", ".join(f"{d} {r['n_train']:,} train / {r['n_test']:,} test"
                      for d in datasets_of(rows)
                      for r in _select(rows, dataset=d, method="ceiling")[:1])
    trusted = any(r["method"] == "trusted" for r in rows)
    lines += [f"Mode: {cfg['mode']}; seeds {', '.join(map(str, cfg['seeds']))}; "
              f"{meta['jobs']} worker(s), 1 thread each. Rows per seed: {sizes}.", ""]
    if trusted:
        lines += ["Recommended route: `TrustedClassifier(random_state=seed)` with its "
                  "defaults (HGB, every route, 5 trusted folds, Brier score, one "
                  "paired standard error against the prior order).", "",
                  *_provenance(meta),
                  "## Goals", ""]
        lines += trusted_goals(rows)
    else:
        lines += ["Recommended route (fixed rule, `benchmarks.tables.recommended_method`): "
                  f"{', '.join(TABULAR)}: {METHODS['reweighted_hgb']}; the pixel sets: "
                  f"{METHODS['l2rw_toc']}; both with clean_class_weight = prior / clean "
                  "share under the per-class protocol.", "",
                  "## Goals", ""]
        lines += goals(rows)
    lines += ["", "![recommended route against the best baseline](tables.png)"]
    lines += ["", "## Test accuracy (%)"]
    lines += cell_tables(rows, "acc")
    lines += ["", "## Test balanced accuracy (%)"]
    lines += cell_tables(rows, "bal_acc")
    lines += ["", "## Reweighted HGB's row weights", ""]
    lines += weights_table(rows)
    if trusted:
        lines += ["", "## The route TrustedClassifier chose", ""]
        lines += chosen_table(rows)
    if any(r["method"] == "trusted_prior" for r in rows):
        lines += ["", "## ... and with the training rows' class prior (clean sets of "
                  "so many rows per class)", "",
                  "`TrustedClassifier(class_prior=prior, random_state=seed)`: held-out "
                  "trusted rows weighed by prior / trusted share of their class. Not the "
                  "recommended route (its default has no prior); a user who knows the "
                  "base rate can pass it.", ""]
        lines += chosen_table(rows, "trusted_prior")
    refused = sorted({(METHODS[r["method"]], r["error"]) for r in rows if "error" in r})
    if refused:
        lines += ["", "## Methods that refused a cell (left out of its means)", ""]
        lines += [f"- {method}: {error}" for method, error in refused]
    lines += ["", "## Median wall time per fit (s, one thread)", ""]
    lines += time_table(rows)
    return "\n".join(lines) + "\n"


def render_figure(rows, path):
    """The recommended route's margin over the best baseline, one cell per square."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    datasets, protocols, kinds = datasets_of(rows), protocols_of(rows), kinds_of(rows)
    columns = [(p, k) for p in protocols for k in kinds]
    grid = np.full((len(datasets), len(columns)), np.nan)
    for i, d in enumerate(datasets):
        for j, (p, k) in enumerate(columns):
            grid[i, j] = 100 * cell_summary(rows, d, p, k)[2]
    limit = max(5.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 5.0)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.55 * len(datasets) + 2))
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(datasets)):
        for j in range(len(columns)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(grid[i, j]) > 0.6 * limit else "black")
    ax.set_xticks(range(len(columns)),
                  [f"{KIND_NAMES[k].replace('Flip', '')}\n{protocol_label(p).replace(' clean rows per class', '/class').replace('audit of ', 'audit ')}"
                   for p, k in columns], fontsize=7)
    ax.set_yticks(range(len(datasets)), datasets)
    fig.colorbar(image, ax=ax, label="recommended route − best baseline (points)")
    ax.set_title("Test accuracy: the recommended route against the best baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def merge_rows(rows, meta, saved, methods):
    """This run's rows of ``methods`` and a saved run's rows of every other method.

    The saved run must have drawn the same splits (same configuration and seeds);
    the merged meta says where each part comes from."""
    keep = [r for r in saved["rows"] if r["method"] not in methods]
    source = saved["meta"]
    # A saved run that was itself a merge, all of whose own methods are refitted
    # now, only passes on rows from its source: name that run, not the merge.
    earlier = source.get("merged")
    if earlier and set(earlier["methods"]) <= set(methods):
        source = earlier
    merged = dict(methods=list(methods), command=source["command"],
                  started=source["started"])
    return keep + rows, dict(meta, merged=merged)


def join_seeds(parts):
    """One run from saved runs of other seeds on the same configuration (data sets,
    sizes, noise, protocols, methods): their rows together, and in the meta where
    each seed comes from."""
    # A merged run's config names only the methods it fitted: compare what the
    # rows hold instead.
    configs = [dict(p["meta"]["config"], seeds=None, methods=None) for p in parts]
    methods = [sorted({r["method"] for r in p["rows"]}) for p in parts]
    if any(c != configs[0] for c in configs[1:]) or any(m != methods[0] for m in methods):
        raise ValueError("runs to join must differ in their seeds only")
    seeds = [s for p in parts for s in p["meta"]["config"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs to join share seeds: {sorted(seeds)}")
    first = min(parts, key=lambda p: p["meta"]["started"])["meta"]
    # A part that is itself a join passes on its own parts: every seed keeps the
    # run it comes from.
    joined = [entry for p in parts for entry in p["meta"].get("joined") or [
        dict(seeds=p["meta"]["config"]["seeds"], command=p["meta"]["command"],
             started=p["meta"]["started"], merged=p["meta"].get("merged"))]]
    meta = dict(first, config=dict(first["config"], seeds=sorted(seeds),
                                   methods=parts[0]["meta"]["config"].get("methods")),
                elapsed=sum(p["meta"]["elapsed"] for p in parts), joined=joined)
    meta.pop("merged", None)
    return [r for p in parts for r in p["rows"]], meta


def _other_rows(merged):
    """Where a merged run's other methods come from."""
    return (f"every other row from `{merged['command']}` (started {merged['started']}), "
            f"on the same splits")


def _provenance(meta):
    """Where the rows come from, when they are not all this command's."""
    if meta.get("joined"):
        lines = ["Seeds joined from separate runs:", ""]
        for part in meta["joined"]:
            seeds = "seed" + "s" * (len(part["seeds"]) > 1)
            line = (f"- {seeds} {', '.join(map(str, part['seeds']))}: `{part['command']}` "
                    f"(started {part['started']})")
            if part.get("merged"):
                line += (f"; rows of {', '.join(part['merged']['methods'])} from it; "
                         f"{_other_rows(part['merged'])}")
            lines.append(line)
        return lines + [""]
    if meta.get("merged"):
        return [f"Rows of {', '.join(meta['merged']['methods'])} come from this run; "
                f"{_other_rows(meta['merged'])}.", ""]
    return []


#: The record's keys in :func:`benchmarks.environment.run_record`'s order, then the
#: run's own; a saved meta's other keys (``merged``, ``joined``) follow them.
RECORD_KEYS = ("command", "started", "elapsed", "load", "machine", "versions", "config",
               "jobs")


def upgrade(saved):
    """A saved run in the layout of today's runs, whichever wrote it.

    Runs written before the record was :func:`benchmarks.environment.run_record`'s
    kept the load average at the end as ``meta.load_end`` and their keys in another
    order (``config, jobs, started, elapsed, ...``); they are still joined, merged,
    rendered and replayed (runs of the old code may still be under way). Nothing
    else differs: the rows, and every value of the record, are kept as they are.

    Parameters
    ----------
    saved : dict
        What a ``tables.json`` holds: ``meta`` and ``rows``.

    Returns
    -------
    dict
        A new dict (``saved`` is not changed): ``meta.load_end`` renamed ``load``, the
        meta's keys in :data:`RECORD_KEYS` order (absent ones stay absent: a run
        that did not record its machine is rendered with the renderer's, as before).
    """
    meta = dict(saved["meta"])
    if "load_end" in meta:
        meta["load"] = meta.pop("load_end")
    ordered = {key: meta.pop(key) for key in RECORD_KEYS if key in meta}
    return dict(saved, meta={**ordered, **meta})


def report(saved):
    """The Markdown report of a saved run (either layout, :func:`upgrade`)."""
    saved = upgrade(saved)
    return render(saved["rows"], saved["meta"], saved["meta"]["command"])


def load(path):
    """A saved ``tables.json``, in today's layout (:func:`upgrade`)."""
    return upgrade(load_rows(path))


def write(saved, folder):
    """Write a run: ``tables.md`` and its rows ``tables.json`` (through
    :func:`benchmarks.environment.write_report`, as every study), and the figure
    ``tables.png`` (when matplotlib is there).

    Parameters
    ----------
    saved : dict
        ``meta`` (the record, with the command) and ``rows``; written in today's
        layout (:func:`upgrade`).
    folder : str or pathlib.Path

    Returns
    -------
    pathlib.Path
        The report's path.
    """
    saved = upgrade(saved)
    # indent=0: a line per value, as the committed runs were written (a full run
    # is 23,000 lines; their diffs stay readable).
    path = write_report(Path(folder) / "tables.md", report(saved), dict(saved, indent=0))
    render_figure(saved["rows"], path.parent / "tables.png")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small, under 5 minutes")
    size.add_argument("--smoke", action="store_true", help="digits only (CI)")
    size.add_argument("--reduced", action="store_true",
                      help="one seed, at most 5,000 training rows per data set")
    size.add_argument("--render", metavar="JSON", help="re-render a saved tables.json")
    size.add_argument("--replay", metavar="JSON",
                      help="print selection rules replayed on a saved tables.json "
                           "(rows that kept cv_routes)")
    size.add_argument("--join", metavar="JSON", nargs="+",
                      help="join saved runs of other seeds (same configuration) into "
                           "one run in --out")
    add_jobs_argument(parser)
    add_out_argument(parser)
    parser.add_argument("--datasets", default=None, help="comma-separated subset")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods to fit (keys of METHODS); "
                             "default every one")
    parser.add_argument("--merge", metavar="JSON", default=None,
                        help="with --methods: take every other method's rows from this "
                             "saved tables.json (a run on the same splits)")
    parser.add_argument("--protocols", default=None,
                        help="comma-separated clean-set protocols, e.g. "
                             "per_class:10,audit:200,audit:0.01")
    args = parse_run_arguments(parser, argv, "tables")
    if args.replay:
        rows = load(args.replay)["rows"]
        print("\n".join(replay_table(replay_rules(rows))))
        return 0
    if args.join:
        # Runs of either layout (upgrade): the join is written in today's.
        rows, meta = join_seeds([load(p) for p in args.join])
        path = write({"meta": dict(meta, command=command_line("tables", argv)),
                      "rows": rows}, args.out)
        print(f"wrote {path}")
        return 0
    if args.render:
        # The report and its figure, rebuilt from the rows (the JSON is read, not
        # written again).
        path = rerender(args.render, args.out, report)
        render_figure(load(args.render)["rows"], path.parent / "tables.png")
        print(f"wrote {path}")
        return 0
    command = command_line("tables", argv)
    cfg = (smoke_config() if args.smoke else quick_config() if args.quick
           else reduced_config() if args.reduced else full_config())
    if args.datasets:
        known = FULL_SIZES if cfg.mode == "full" else cfg.datasets
        cfg.datasets = {d: known[d] for d in chosen_names(parser, args.datasets, known,
                                                          "data sets for this mode")}
    if args.seeds:
        cfg.seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.protocols:
        cfg.protocols = tuple(parse_protocol(p) for p in args.protocols.split(","))
    if args.methods:
        cfg.methods = tuple(chosen_names(parser, args.methods, METHODS, "methods"))
    if args.merge and not args.methods:
        parser.error("--merge needs --methods (the methods this run fits)")
    jobs = worker_count(args)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    rows, meta = run(cfg, jobs=jobs, log=lambda m: print(m, flush=True), command=command)
    if args.merge:
        rows, meta = merge_rows(rows, meta, load(args.merge), cfg.methods)
    path = write({"meta": meta, "rows": rows}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
