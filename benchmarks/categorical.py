"""Categorical columns embedded against one-hot encoded, on the quality benchmark's
adult and kdd_census label-noise cells.

For every cell of ``benchmarks/quality.py``'s label-noise part on the two tables with
categorical columns (UniformFlip, BackgroundFlip and PairFlip at 40%, 10 and 100
clean rows per class, the same rows, seeds, clean splits and noisy labels), the same
L2RW net is fitted twice: on quality's one-hot encoded array, and on the frame
itself, whose string columns the estimator encodes as codes that
:class:`sk_l2rw.modules.MLP` embeds (numeric columns standardised in both). Both
also train without a clean set (plain training through the same estimator, so
that the two encodings are compared without L2RW as well).

Usage::

    python -m benchmarks.categorical                      # 5 seeds, 2 worker processes
    python -m benchmarks.categorical --seeds 0,1,2 --jobs 1
    python -m benchmarks.categorical --smoke              # a generated table (CI)

Writes ``results/categorical.json`` (one row per fit) and ``results/categorical.md``.
"""

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.common import methods, protocol, runner
from benchmarks.datasets import adult_preprocessor
from benchmarks.report import markdown_table, mean_std
from benchmarks.environment import (add_jobs_argument, add_report_arguments, report_header,
                                    study_command, worker_count)

ENCODINGS = ("one_hot", "embedded")
METHODS = ("plain", "l2rw")
DATASETS = ("adult", "kdd_census")


def full_config(seeds=None):
    """quality's full setting, on the two tables only."""
    cfg = protocol.full_config()
    sizes = {name: cfg.datasets[name] for name in DATASETS}
    return dataclasses.replace(cfg, datasets=sizes, seeds=seeds or cfg.seeds)


def smoke_config():
    cfg = protocol.smoke_config()
    return dataclasses.replace(cfg, datasets={"generated": (None, None)},
                               kinds=("background",), clean_sizes=(10,))


def generated_pool(seed=0, n=900):
    """A table with two string columns, for ``--smoke`` (no download)."""
    import pandas as pd

    rng = np.random.RandomState(seed)
    colour = rng.choice(["red", "green", "blue", "amber"], n).astype(object)
    colour[rng.rand(n) < 0.05] = None
    frame = pd.DataFrame({"a": rng.randn(n), "colour": colour,
                          "size": rng.choice(["S", "M", "L"], n).astype(object),
                          "b": rng.randn(n)})
    y = np.where(pd.Series(colour).isin(["red", "blue"]) ^ (frame["a"] > 0), "yes", "no")
    y = y.astype(object)
    return frame.iloc[:600], y[:600], frame.iloc[600:].reset_index(drop=True), y[600:]


def _one_hot_preprocessor():
    """quality's recipe for the tables (standardise numbers, one-hot the strings)."""
    return adult_preprocessor()


def prepare(name, pool, size, seed):
    """The rows quality draws for this seed, in both encodings.

    Returns
    -------
    dict
        ``one_hot``: (X_train, X_test) float32 arrays as :func:`protocol.prepare`
        makes them; ``embedded``: (X_train, X_test) frames with the numeric columns
        standardised (fitted on the training rows) and the string columns as they
        are; ``y_train``, ``y_test`` as codes; ``classes``.
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.preprocessing import StandardScaler

    X_tr, y_tr, X_te, y_te = pool
    n_train, n_test = size
    i_tr = protocol.subsample(np.asarray(y_tr).astype(str), n_train, seed)
    i_te = protocol.subsample(np.asarray(y_te).astype(str), n_test, seed)
    X_tr, y_tr = protocol.take(X_tr, i_tr), y_tr[i_tr]
    X_te, y_te = protocol.take(X_te, i_te), y_te[i_te]
    one_hot = _one_hot_preprocessor().fit(X_tr)
    scale = ColumnTransformer(
        [("numeric", StandardScaler(), make_column_selector(dtype_include="number"))],
        remainder="passthrough", verbose_feature_names_out=False)
    scale.set_output(transform="pandas").fit(X_tr)
    classes, y_tr = np.unique(np.asarray(y_tr), return_inverse=True)
    y_te = np.searchsorted(classes, np.asarray(y_te))

    def as_float32(frame):
        numeric = frame.select_dtypes("number").columns
        return frame.astype({c: np.float32 for c in numeric})

    return dict(
        one_hot=tuple(np.ascontiguousarray(one_hot.transform(X), dtype=np.float32)
                      for X in (X_tr, X_te)),
        embedded=tuple(as_float32(scale.transform(X)) for X in (X_tr, X_te)),
        y_train=y_tr, y_test=y_te, classes=[str(c) for c in classes])


def _net(cfg, encoding, X, K, n_rows, seed, clean):
    from sk_l2rw import L2RWClassifier

    params = methods.net_params(cfg, X.shape[1], K, n_rows)
    if encoding == "embedded":
        del params["module__n_features"]  # the numeric width, set by the estimator
    X_clean, y_clean = clean
    return L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed, **params)


def _take_rows(X, idx):
    return X.iloc[idx].reset_index(drop=True) if hasattr(X, "iloc") else X[idx]


def task(cfg, name, seed, data, threads=1):
    """Every cell of one data set and seed: both encodings, plain and L2RW."""
    from sk_l2rw.exceptions import NoCleanSetWarning

    cells = [(kind, cfg.rate, clean) for kind in cfg.kinds for clean in cfg.clean_sizes]
    y, y_te = data["y_train"], data["y_test"]
    K = len(data["classes"])
    rows = []
    ids = np.arange(len(y)).reshape(-1, 1)  # the split is made on row ids, for both
    with runner.limited_threads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", NoCleanSetWarning)
        for clean, id_rest, id_clean, y_clean, noisy in protocol.noise_splits(
                ids, y, cells, seed):
            rest, picked = id_rest[:, 0], id_clean[:, 0]
            for kind, rate, y_noisy, flipped in noisy:
                base = dict(dataset=name, seed=seed, kind=kind, rate=rate, clean=clean)
                for encoding in ENCODINGS:
                    X_all, X_test = data[encoding]
                    X, X_clean = _take_rows(X_all, rest), _take_rows(X_all, picked)
                    for method in METHODS:
                        given = (X_clean, y_clean) if method == "l2rw" else (None, None)
                        net = _net(cfg, encoding, X_all, K, len(y_noisy), seed, given)
                        started = time.perf_counter()
                        net.fit(X, y_noisy)
                        row = dict(base, encoding=encoding, method=method,
                                   wall_s=round(time.perf_counter() - started, 2),
                                   **methods.metrics(net, X_test, y_te))
                        if method == "l2rw":
                            row["weight_ratio"] = methods.weight_ratio(net, flipped)
                        rows.append(row)
    return rows


def run(cfg, *, jobs=1, log=print):
    """All rows of one run: a task per (data set, seed)."""
    tasks = []
    for name, size in cfg.datasets.items():
        pool = generated_pool() if name == "generated" else protocol.load_pool(name)
        for seed in cfg.seeds:
            data = prepare(name, pool, size, seed)
            tasks.append((f"{name} seed {seed}", task, (cfg, name, seed, data)))
    return runner.execute(tasks, jobs=jobs, log=log)


def render(rows, *, metric="acc"):
    """One table per metric: a row per cell, a column per (method, encoding), and
    the paired difference embedded - one-hot of L2RW (mean ± std over seeds)."""
    cells = sorted({(r["dataset"], r["kind"], r["clean"]) for r in rows},
                   key=lambda c: (c[0], protocol.KIND_NAMES[c[1]], c[2]))
    columns = [(m, e) for m in METHODS for e in ENCODINGS]
    head = ["data set", "noise", "clean/class"] + [f"{m} {e.replace('_', '-')}"
                                                   for m, e in columns]
    body = []
    for dataset, kind, clean in cells:
        here = [r for r in rows if (r["dataset"], r["kind"], r["clean"]) == (dataset, kind, clean)]
        values = [mean_std([r[metric] for r in here
                            if (r["method"], r["encoding"]) == (method, encoding)], scale=100)
                  for method, encoding in columns]
        by_seed = {}
        for r in here:
            if r["method"] == "l2rw":
                by_seed.setdefault(r["seed"], {})[r["encoding"]] = r[metric]
        diffs = [v["embedded"] - v["one_hot"] for v in by_seed.values() if len(v) == 2]
        body.append([dataset, protocol.KIND_NAMES[kind], str(clean), *values,
                     mean_std(diffs, scale=100)])
    lines = markdown_table(head + ["L2RW embedded − one-hot (paired)"], body,
                           align="lll" + "r" * (len(columns) + 1))
    return "\n".join(lines) + "\n"


def summary(rows):
    """Per (data set, method): mean over cells and seeds of embedded − one-hot, the
    number of cells where embedded's mean is higher, and the mean wall time."""
    out = []
    for dataset in sorted({r["dataset"] for r in rows}):
        for method in METHODS:
            pick = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            keyed = {}
            for r in pick:
                keyed.setdefault((r["kind"], r["clean"], r["seed"]), {})[r["encoding"]] = r
            diffs = [v["embedded"]["acc"] - v["one_hot"]["acc"] for v in keyed.values()]
            cell_means = {}
            for (kind, clean, _), v in keyed.items():
                cell_means.setdefault((kind, clean), []).append(
                    v["embedded"]["acc"] - v["one_hot"]["acc"])
            wins = sum(np.mean(d) > 0 for d in cell_means.values())
            wall = {e: np.mean([r["wall_s"] for r in pick if r["encoding"] == e])
                    for e in ENCODINGS}
            out.append(dict(dataset=dataset, method=method,
                            mean_diff=float(np.mean(diffs)), cells=len(cell_means),
                            embedded_better=int(wins), wall_one_hot=float(wall["one_hot"]),
                            wall_embedded=float(wall["embedded"])))
    return out


def report(saved):
    """The Markdown report of a run: ``saved`` is what :func:`main` wrote as JSON
    (``meta``, the run's record, with ``smoke``; ``rows``, :func:`run`'s)."""
    rows, meta = saved["rows"], dict(saved["meta"])
    smoke = meta.pop("smoke", False)
    lines = report_header("Categorical columns: embedded against one-hot encoded", **meta)
    if smoke:
        lines += ["**A `--smoke` run on a generated table: it only shows that the "
                  "script runs.**", ""]
    lines += [
        "Generated by `benchmarks/categorical.py`; its docstring says what runs. "
        "Every number is a mean ± std over seeds; the last column pairs the two "
        "encodings seed by seed. The reading is in `docs/findings/categorical.md`.", "",
        "## Summary (accuracy, embedded − one-hot, mean over cells and seeds)", "",
    ]
    lines += markdown_table(
        ["data set", "method", "mean difference (points)", "cells where embedded is higher",
         "mean fit time one-hot / embedded (s)"],
        [[s["dataset"], s["method"], f"{100 * s['mean_diff']:+.1f}",
          f"{s['embedded_better']} of {s['cells']}",
          f"{s['wall_one_hot']:.1f} / {s['wall_embedded']:.1f}"] for s in summary(rows)],
        align="llrrr")
    lines += ["", "## Accuracy (%)", "", render(rows, metric="acc"),
              "## Balanced accuracy (%)", "", render(rows, metric="bal_acc")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "categorical.md", smoke="a generated table (CI)")
    parser.add_argument("--seeds", default=None, help="comma-separated, e.g. 0,1,2")
    add_jobs_argument(parser)

    def measure(args):
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
        cfg = smoke_config() if args.smoke else full_config(seeds)
        return run(cfg, jobs=worker_count(args)), dict(smoke=args.smoke)

    return study_command("categorical", parser, argv, report, measure)


if __name__ == "__main__":
    main()
