"""How large must the clean batch be? Clean batches of 16, 32, 64 rows against the
training batch (128, the estimator's default ``clean_batch_size=None``).

Cells: the label-noise cells of ``quality.md`` (UniformFlip, BackgroundFlip and
PairFlip at 40%, 10 clean rows per class, its data sets and sizes, seeds 0-4), and
on each the L2RW routes of ``tables.md``: the paper's (``paper``), with
``clean_class_weight`` = training prior / clean share (``prior``), and that with
``train_on_clean=True`` (``train_on_clean``). Every clean batch of a cell and seed
trains on the same split, noisy labels and seed (paired), with quality.md's one
setting (MLP 256, Adam 1e-3, batch 128, 20 epochs or 200 steps); plain skorch
``NeuralNetClassifier`` on the noisy rows is fitted in the same run, on the same
rows, for the fit-time ratio. A clean batch at least as large as the clean set
uses the whole set every step, so its fit is the same fit as the training-batch
default's; it is not run twice (``reused`` in the rows).

The rule, fixed before any run: for each route, the recommended clean batch is the
smallest of 16, 32, 64 whose mean accuracy over all cells and seeds is within 0.5
point of the training-batch default's AND that is no more than 2 points below it in
any cell (cell = data set x noise kind, mean over seeds); if none qualifies, the
training batch stays. The study reports; it does not change the default.

Writes ``clean_batch.md`` and ``clean_batch.json`` (every fit) into ``--out``.

Usage::

    python -m benchmarks.clean_batch                 # full: 6 data sets, 5 seeds
    python -m benchmarks.clean_batch --smoke         # digits only, seconds; no download
    python -m benchmarks.clean_batch --seeds 0 --datasets digits mnist
    python -m benchmarks.clean_batch --render benchmarks/results/clean_batch.json

Runs in one process with one torch thread (``OMP_WAIT_POLICY=PASSIVE`` advised on a
shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import numpy as np

from benchmarks.environment import add_report_arguments, report_header, study_command
from benchmarks.common.methods import fit_plain, net_params
from benchmarks.common.protocol import KIND_NAMES, load_pool, noisy_labels, prepare
from benchmarks.common.protocol import full_config as quality_config
from benchmarks.common.protocol import smoke_config as quality_smoke_config
from benchmarks.common.runner import limited_threads
from benchmarks.report import markdown_table, median

STUDY = "clean_batch"
CLEAN_BATCHES = (16, 32, 64)
DEFAULT = "batch"  # the training batch: clean_batch_size=None
ROUTES = ("paper", "prior", "train_on_clean")
# The rule (module docstring), fixed before running.
MEAN_TOLERANCE = 0.5  # points
CELL_TOLERANCE = 2.0  # points


@dataclasses.dataclass
class Config:
    """What one run covers; :func:`full_config` and :func:`smoke_config` below."""

    mode: str
    seeds: tuple
    datasets: dict  # name -> (training rows, test rows), as quality.py's
    kinds: tuple = ("uniform", "background", "pair")
    rate: float = 0.4
    clean_per_class: int = 10
    routes: tuple = ROUTES
    clean_batches: tuple = CLEAN_BATCHES
    # The quality benchmark's one setting (hidden, lr, batch_size, epochs, min_steps).
    quality: object = dataclasses.field(default_factory=quality_config)


def full_config():
    q = quality_config()
    return Config(mode="full", seeds=tuple(q.seeds), datasets=dict(q.datasets), quality=q)


def smoke_config():
    """Digits (bundled with scikit-learn), one seed, one noise kind: seconds."""
    return Config(mode="smoke", seeds=(0,), datasets={"digits": (500, 300)},
                  kinds=("background",), clean_batches=(16, 32),
                  quality=quality_smoke_config())


def effective(batch, n_clean, batch_size):
    """Clean rows per step: ``min(batch, n_clean)``; the default is the training batch."""
    return min(batch_size if batch == DEFAULT else batch, n_clean)


def _fit_l2rw(q, X, y, X_clean, y_clean, K, seed, **options):
    from sk_l2rw import L2RWClassifier

    net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed,
                         **net_params(q, X.shape[1], K, len(y)), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net.fit(X, y)


def route_options(route, prior, y_clean):
    """``L2RWClassifier`` options of a route (tables.md's): ``prior`` weights the clean
    classes by training prior over clean share."""
    if route == "paper":
        return {}
    classes, counts = np.unique(y_clean, return_counts=True)
    weights = {int(k): float(prior[k] / (c / counts.sum())) for k, c in zip(classes, counts)}
    options = {"clean_class_weight": weights}
    if route == "train_on_clean":
        options["train_on_clean"] = True
    return options


def cell_rows(cfg, name, data, kind, seed, log=print):
    """Plain skorch and every route x clean batch on one (data set, kind, seed)."""
    from sk_l2rw.noise import split_clean

    q = cfg.quality
    X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    K = len(data["classes"])
    X_rest, y_rest, X_clean, y_clean = split_clean(X, y, cfg.clean_per_class,
                                                   random_state=seed)
    y_noisy, _ = noisy_labels(y, y_rest, cfg.rate, kind, seed)  # as quality's cells
    prior = np.bincount(y, minlength=K) / len(y)
    base = dict(dataset=name, kind=kind, seed=seed, n_clean=len(y_clean))
    rows = []
    t0 = time.perf_counter()
    net, _ = fit_plain(q, X_rest, y_noisy, K, seed)
    rows.append(dict(base, route="plain", clean_batch=None, reused=False,
                     wall_s=round(time.perf_counter() - t0, 3),
                     acc=float(np.mean(net.predict(X_te) == y_te))))
    for route in cfg.routes:
        done = {}  # effective clean batch -> its row
        for batch in (*cfg.clean_batches, DEFAULT):
            size = effective(batch, len(y_clean), q.batch_size)
            if size in done:
                rows.append(dict(done[size], clean_batch=batch, reused=True))
                continue
            t0 = time.perf_counter()
            net = _fit_l2rw(q, X_rest, y_noisy, X_clean, y_clean, K, seed,
                            clean_batch_size=None if batch == DEFAULT else batch,
                            **route_options(route, prior, y_clean))
            row = dict(base, route=route, clean_batch=batch, reused=False,
                       wall_s=round(time.perf_counter() - t0, 3),
                       acc=float(np.mean(net.predict(X_te) == y_te)))
            rows.append(done.setdefault(size, row))
    log(f"{name} {KIND_NAMES[kind]} seed {seed}: "
        f"{sum(r['wall_s'] for r in rows if not r['reused']):.0f} s of fits")
    return rows


@limited_threads(1)
def run(cfg, log=print):
    """Every fit of ``cfg``, one process; returns the rows."""
    # Untimed fits first: the first fit of a process pays torch's start-up,
    # which would land on whichever method came first.
    X, y = np.random.RandomState(0).rand(64, 4).astype(np.float32), np.arange(64) % 2
    fit_plain(quality_smoke_config(), X, y, 2, 0)
    _fit_l2rw(quality_smoke_config(), X, y, X[:8], y[:8], 2, 0)
    rows = []
    for name, size in cfg.datasets.items():
        pool = load_pool(name)
        for seed in cfg.seeds:
            data = prepare(name, pool, size, seed)
            for kind in cfg.kinds:
                rows.extend(cell_rows(cfg, name, data, kind, seed, log=log))
    return rows


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _acc(rows, route, batch, dataset=None, kind=None):
    """{(dataset, kind, seed): accuracy} of one route and clean batch."""
    return {(r["dataset"], r["kind"], r["seed"]): r["acc"] for r in rows
            if r["route"] == route and r["clean_batch"] == batch
            and (dataset is None or r["dataset"] == dataset)
            and (kind is None or r["kind"] == kind)}


def cells_of(rows):
    return sorted({(r["dataset"], r["kind"]) for r in rows})


def verdict(rows, route, batches):
    """The rule (module docstring) for ``route``: the chosen clean batch (or DEFAULT)
    and, per candidate, (mean difference, worst cell difference) in points."""
    ref = _acc(rows, route, DEFAULT)
    checks = {}
    chosen = DEFAULT
    for batch in batches:
        acc = _acc(rows, route, batch)
        keys = sorted(set(acc) & set(ref))
        mean = 100 * float(np.mean([acc[k] - ref[k] for k in keys]))
        worst = min(100 * float(np.mean([acc[k] - ref[k] for k in keys if k[:2] == cell]))
                    for cell in {k[:2] for k in keys})
        checks[batch] = (mean, worst)
        if chosen == DEFAULT and mean >= -MEAN_TOLERANCE and worst >= -CELL_TOLERANCE:
            chosen = batch
    return chosen, checks


def time_ratios(rows, route, batch):
    """Median over (data set, kind, seed) of the route's fit time over plain skorch's
    fit on the same rows in the same run (reused fits excluded)."""
    plain = {(r["dataset"], r["kind"], r["seed"]): r["wall_s"] for r in rows
             if r["route"] == "plain"}
    ratios = [r["wall_s"] / plain[(r["dataset"], r["kind"], r["seed"])] for r in rows
              if r["route"] == route and r["clean_batch"] == batch and not r["reused"]]
    return median(ratios) if ratios else None


def render(saved):
    """The report, from what :class:`StudyRun` saved (rows, config, meta)."""
    rows, meta, config = saved["rows"], saved["meta"], saved["config"]
    batches = [b for b in config["clean_batches"]]
    labels = {**{b: str(b) for b in batches}, DEFAULT: f"{config['batch_size']} (default)"}
    seeds = sorted({r["seed"] for r in rows})
    lines = report_header("sk_l2rw clean batch study: how many clean rows per step",
                          command=meta["command"], started=meta["started"],
                          elapsed=meta["elapsed"], smoke=config["mode"] == "smoke",
                          load=meta.get("load"), machine=meta.get("machine"),
                          versions=meta.get("versions"))
    if config.get("reduced"):
        lines += [f"**Reduced run**: {config['reduced']}", ""]
    lines += [
        f"Cells: {', '.join(sorted({r['dataset'] for r in rows}))} x "
        f"{', '.join(KIND_NAMES[k] for k in config['kinds'])} at "
        f"{config['rate']:.0%}, {config['clean_per_class']} clean rows per class; seeds "
        f"{', '.join(map(str, seeds))}. Clean batches {', '.join(map(str, batches))} and "
        f"the training batch {config['batch_size']} (clean_batch_size=None); a batch "
        "at least as large as the clean set is the default's fit (reused).", "",
        f"Rule (fixed before running): the smallest clean batch whose mean accuracy is "
        f"within {MEAN_TOLERANCE} point of the default's and no cell (data set x kind, "
        f"mean over seeds) more than {CELL_TOLERANCE} points lower.", "",
        "## Verdicts", ""]
    table = []
    for route in config["routes"]:
        chosen, checks = verdict(rows, route, batches)
        table.append([route, labels[chosen]] + [
            f"{checks[b][0]:+.2f} / {checks[b][1]:+.2f}" for b in batches])
    lines += [*markdown_table(["route", "rule says"] + [
        f"{b}: mean / worst cell (points)" for b in batches], table), ""]
    lines += ["## Accuracy (%), mean over seeds", ""]
    for route in config["routes"]:
        body = []
        for dataset, kind in cells_of(rows):
            cells = []
            for b in (*batches, DEFAULT):
                acc = _acc(rows, route, b, dataset, kind)
                cells.append(f"{100 * np.mean(list(acc.values())):.1f}" if acc else "")
            n_clean = next(r["n_clean"] for r in rows if r["dataset"] == dataset)
            body.append([dataset, KIND_NAMES[kind], str(n_clean)] + cells)
        lines += [f"### {route}", "", *markdown_table(
            ["data set", "noise", "clean rows"] + [labels[b] for b in (*batches, DEFAULT)],
            body), ""]
    lines += ["## Fit time against plain skorch (same rows, same run)", "",
              "Median over (data set, kind, seed) of the L2RW fit's wall time over plain "
              "`NeuralNetClassifier`'s on the noisy rows; fits reused from a larger batch "
              "are left out.", ""]
    body = [[route] + [f"{x:.2f}x" if (x := time_ratios(rows, route, b)) else "-"
                       for b in (*batches, DEFAULT)] for route in config["routes"]]
    lines += [*markdown_table(["route"] + [labels[b] for b in (*batches, DEFAULT)], body), ""]
    return "\n".join(lines)


def config_record(cfg, reduced=None):
    q = cfg.quality
    return dict(mode=cfg.mode, seeds=list(cfg.seeds), datasets=cfg.datasets,
                kinds=list(cfg.kinds), rate=cfg.rate, clean_per_class=cfg.clean_per_class,
                routes=list(cfg.routes), clean_batches=list(cfg.clean_batches),
                batch_size=q.batch_size, hidden=q.hidden, lr=q.lr, epochs=q.epochs,
                min_steps=q.min_steps, reduced=reduced)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "clean_batch.md", "digits only, one seed: seconds")
    parser.add_argument("--seeds", type=int, nargs="+", help="a subset of the seeds")
    parser.add_argument("--datasets", nargs="+", help="a subset of the data sets")
    parser.add_argument("--routes", nargs="+", choices=ROUTES, help="a subset of the routes")

    def measure(args):
        cfg = smoke_config() if args.smoke else full_config()
        reduced = []
        if args.seeds:
            cfg.seeds = tuple(args.seeds)
            reduced.append(f"seeds {', '.join(map(str, cfg.seeds))}")
        if args.datasets:
            cfg.datasets = {k: v for k, v in cfg.datasets.items() if k in args.datasets}
            reduced.append(f"data sets {', '.join(cfg.datasets)}")
        if args.routes:
            cfg.routes = tuple(args.routes)
            reduced.append(f"routes {', '.join(cfg.routes)}")
        rows = run(cfg)
        reduced = "; ".join(reduced) + " instead of the full configuration" if reduced else None
        # The report reads the configuration, not the run's record: it goes beside the rows.
        return rows, None, dict(config=config_record(cfg, reduced))

    study_command(STUDY, parser, argv, render, measure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
