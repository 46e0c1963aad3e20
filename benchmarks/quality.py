"""Accuracy of L2RW against the baselines a user would try, on real data.

For every data set and setting -- UniformFlip, BackgroundFlip and PairFlip at 40%
label noise, and for MNIST 4-vs-9 the paper's class imbalance -- with clean sets of
10 and of 100 rows per class and several seeds, this measures the test accuracy
(balanced accuracy for imbalance) of

- plain skorch ``NeuralNetClassifier`` on the noisy rows, and on noisy + clean rows
  (plus, as an extra, the same noisy-rows fit stopped at its best clean-set loss);
- the same net trained on the clean rows only;
- class-balanced loss weights (imbalance settings);
- cleanlab's ``CleanLearning`` wrapping the same skorch net;
- ``HistGradientBoostingClassifier`` on noisy + clean rows;
- the ceiling: the same net on the true labels (balanced data for imbalance);
- ``sk_l2rw.L2RWClassifier`` with its default settings.

Every net has the same module, optimizer, learning rate, epochs and batch size: one
fixed setting, written in the report, nothing tuned per data set or per method.

Also: accuracy against the noise rate on one data set, error against the majority
proportion on MNIST 4-vs-9 (the paper's figure), and a small study of when L2RW's
normalised weights make SGD training collapse.

Writes ``quality.md``, its rows ``quality.json`` (every per-seed number, with the
run's record: ``benchmarks.environment.run_record`` with the configuration, the
workers and the load at the start) and ``quality_*.png`` into ``--out``.

Usage::

    python -m benchmarks.quality            # full run, about an hour on 2 cores
    python -m benchmarks.quality --quick    # every part, small; under 5 minutes
    python -m benchmarks.quality --smoke    # digits only, ~20 s (CI; no download)
    python -m benchmarks.quality --render quality.json   # re-render a saved run
    python -m benchmarks.quality --module lenet --parts imbalance   # the paper's CNN

Options: ``--jobs N`` worker processes (default 2, one torch thread each),
``--raw PATH`` also write the rows to PATH, ``--out DIR``,
``--parts`` and ``--datasets`` run a subset, ``--module lenet`` uses the paper's
LeNet for every net (image data only; the report is ``quality_lenet.md``).
Needs cleanlab (``pip install cleanlab``) for its column and matplotlib for the
figures; without them those parts are skipped with a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.common.baselines import Timer, seed_torch
from benchmarks.common.methods import (fit_cleanlab, fit_hgb, fit_l2rw, fit_plain,
                                       have_cleanlab, metrics, net_params, weight_ratio)
from benchmarks.common.protocol import (IMAGE_SETS, KIND_NAMES, PARTS, Config, full_config,
                                        imbalance_clean_split, imbalanced_rows, load_pool,
                                        minority_codes, noise_splits, prepare,
                                        prepare_collapse, prepare_imbalance, quick_config,
                                        smoke_config, use_module)
from benchmarks.common.runner import execute, limited_threads
from benchmarks.report import markdown_table, percent, stats
from benchmarks.environment import (RESULTS, StudyRun, add_jobs_argument, add_out_argument,
                                    chosen_names, command_line, cpu_model, load_average,
                                    load_rows, parse_run_arguments, save_rows, versions_line,
                                    worker_count, write_report)
from sk_l2rw.exceptions import CleanLossWarning


# Non-bundled data sets the goals are counted on; digits is reported too.
MAIN_SETS = ("mnist", "fashion_mnist", "adult", "letter", "kdd_census")

# Method keys, in table order, with their column titles.
METHODS = {
    "plain_noisy": "plain (noisy)",
    "plain_both": "plain (noisy+clean)",
    "plain_es": "plain (noisy), best clean-loss epoch*",
    "clean_only": "clean only",
    "class_balanced": "class-balanced",
    "cleanlab": "cleanlab",
    "hgb": "HGB (noisy+clean)",
    "ceiling": "ceiling",
    "l2rw": "L2RW",
    "l2rw_both": "L2RW, clean rows also in X*",
    "l2rw_prior": "L2RW, clean set weighted to the base rate*",
}
# The baselines the goals are judged against (the list); plain_es is an
# extra, reported separately.
GOAL_BASELINES = ("plain_noisy", "plain_both", "clean_only", "class_balanced",
                  "cleanlab", "hgb")


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------


def _record(rows, base, method, model_metrics, timer, **extra):
    row = dict(base, method=method, wall_s=round(timer.wall, 3), cpu_s=round(timer.cpu, 3))
    row.update(model_metrics)
    row.update(extra)
    rows.append(row)


def _l2rw_extra(net, warned, mask):
    h = net.history
    return dict(weight_ess=float(h[-1, "weight_ess"]),
                weight_zero_frac=float(h[-1, "weight_zero_frac"]),
                clean_loss=float(h[-1, "clean_loss"]),
                weight_ratio=weight_ratio(net, mask), collapse_warned=bool(warned))


def run_methods(cfg, base, X, y_obs, X_clean, y_clean, X_test, y_test, K, seed, *,
                mask, methods, rows, class_weight=None):
    """Fit each requested method on one cell and append a result row per method.

    ``y_obs`` are the observed (noisy or imbalanced) labels of ``X``; ``mask`` marks
    the rows whose weights L2RW should lower (flipped rows) or raise (minority).
    """
    X_both = np.vstack([X, X_clean])
    y_both = np.concatenate([y_obs, y_clean])
    if "plain_noisy" in methods:
        with Timer() as t:
            net, best = fit_plain(cfg, X, y_obs, K, seed, X_clean=X_clean, y_clean=y_clean)
        _record(rows, base, "plain_noisy", metrics(net, X_test, y_test), t)
        if "plain_es" in methods and best:
            net.module_.load_state_dict(best["state"])
            _record(rows, base, "plain_es", metrics(net, X_test, y_test), t,
                    best_epoch=best["epoch"])
    if "plain_both" in methods:
        with Timer() as t:
            net, _ = fit_plain(cfg, X_both, y_both, K, seed)
        _record(rows, base, "plain_both", metrics(net, X_test, y_test), t)
    if "class_balanced" in methods:
        counts = np.bincount(y_both, minlength=K).astype(float)
        weight = len(y_both) / (K * np.maximum(counts, 1))
        with Timer() as t:
            net, _ = fit_plain(cfg, X_both, y_both, K, seed, class_weight=weight)
        _record(rows, base, "class_balanced", metrics(net, X_test, y_test), t)
    if "cleanlab" in methods:
        if have_cleanlab():
            with Timer() as t:
                model, flagged = fit_cleanlab(cfg, X_both, y_both, K, seed)
            _record(rows, base, "cleanlab", metrics(model, X_test, y_test), t,
                    flagged=flagged)
    if "hgb" in methods:
        with Timer() as t:
            model = fit_hgb(cfg, X_both, y_both, seed)
        _record(rows, base, "hgb", metrics(model, X_test, y_test), t,
                n_iter=int(model.n_iter_))
    if "l2rw" in methods:
        with Timer() as t:
            try:
                net, warned = fit_l2rw(cfg, X, y_obs, X_clean, y_clean, K, seed)
            except FloatingPointError as exc:
                net = None
                failure = str(exc)
        if net is None:
            _record(rows, base, "l2rw", dict(acc=float("nan"), bal_acc=float("nan")), t,
                    failed=failure)
        else:
            _record(rows, base, "l2rw", metrics(net, X_test, y_test), t,
                    **_l2rw_extra(net, warned, mask))


# ---------------------------------------------------------------------------
# Tasks (each runs in a worker process, one torch thread)
# ---------------------------------------------------------------------------


def noise_task(cfg, name, seed, data, cells, threads=1):
    """All noise cells of one data set and seed; ``cells`` is [(kind, rate, clean)]."""
    with limited_threads(threads):
        rows = []
        X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        K = len(data["classes"])
        base = dict(part="noise", dataset=name, seed=seed)
        # The ceiling sees every training row with its true label: it depends on
        # neither the noise nor the clean split.
        with Timer() as t:
            net, _ = fit_plain(cfg, X, y, K, seed)
        _record(rows, dict(base, kind="*", rate=None, clean=None), "ceiling",
                metrics(net, X_te, y_te), t)
        for clean, X_rest, X_clean, y_clean, noisy in noise_splits(X, y, cells, seed):
            with Timer() as t:
                net, _ = fit_plain(cfg, X_clean, y_clean, K, seed)
            _record(rows, dict(base, kind="*", rate=None, clean=clean), "clean_only",
                    metrics(net, X_te, y_te), t)
            for kind, rate, y_noisy, flipped in noisy:
                run_methods(cfg, dict(base, kind=kind, rate=rate, clean=clean), X_rest,
                            y_noisy, X_clean, y_clean, X_te, y_te, K, seed, mask=flipped,
                            methods=("plain_noisy", "plain_es", "plain_both", "cleanlab",
                                     "hgb", "l2rw"),
                            rows=rows)
        return rows


def imbalance_task(cfg, seed, pool, threads=1):
    """4-vs-9: every majority proportion and clean size, one seed.

    Clean rows are drawn first (balanced), the imbalanced training rows from the rest.
    The ceiling is the same net on balanced rows (proportion 0.5) of the same number.
    """
    with limited_threads(threads):
        rows = []
        X, y, X_te, y_te = pool["X_train"], pool["y_train"], pool["X_test"], pool["y_test"]
        base = dict(part="imbalance", dataset=cfg.imb_dataset, seed=seed)

        y_te = minority_codes(y_te, cfg.imb_classes[1])
        X_bal, y_bal = imbalanced_rows(cfg, X, y, 0.5, cfg.imb_train, seed)
        with Timer() as t:
            net, _ = fit_plain(cfg, X_bal, y_bal, 2, seed)
        _record(rows, dict(base, proportion=None, clean=None), "ceiling",
                metrics(net, X_te, y_te), t)
        for clean in cfg.imb_clean_sizes:
            X_rest, y_rest, X_clean, y_clean = imbalance_clean_split(cfg, X, y, clean, seed)
            with Timer() as t:
                net, _ = fit_plain(cfg, X_clean, y_clean, 2, seed)
            _record(rows, dict(base, proportion=None, clean=clean), "clean_only",
                    metrics(net, X_te, y_te), t)
            for p in cfg.imb_proportions:
                X_imb, y_imb = imbalanced_rows(cfg, X_rest, y_rest, p, cfg.imb_train, seed)
                run_methods(cfg, dict(base, proportion=p, clean=clean), X_imb, y_imb,
                            X_clean, y_clean, X_te, y_te, 2, seed, mask=y_imb == 1,
                            methods=("plain_noisy", "plain_es", "plain_both",
                                     "class_balanced", "cleanlab", "hgb", "l2rw"),
                            rows=rows)
        return rows


# --- collapse study ---------------------------------------------------------

COLLAPSE_SHARE = 0.5  # a class predicted for more than half of a balanced test set
EXPLODED = 100.0  # clean loss at the last epoch over its best: the run blew up


def collapse_task(cfg, kind, seed, data, threads=1):
    """SGD (momentum 0.9) at several learning rates: plain vs L2RW, then remedies.

    For each rate: plain training and L2RW. The rate a user would keep for plain
    training is the one with the lowest clean-set loss; at that rate L2RW is rerun
    with a clean batch of 16 rows, with 3 plain warm-up epochs, and at a 5x smaller
    rate; and once with Adam at the benchmark's setting.
    """
    import torch
    from skorch import NeuralNetClassifier

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.noise import flip_labels, split_clean

    with limited_threads(threads):
        rows = []
        X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        K = len(data["classes"])
        X_rest, y_rest, X_clean, y_clean = split_clean(X, y, cfg.collapse_clean,
                                                       random_state=seed)
        y_noisy, flipped = flip_labels(y_rest, cfg.rate, kind, background_class=0,
                                       random_state=seed)
        base = dict(part="collapse", dataset=cfg.collapse_dataset, kind=kind, seed=seed)
        sgd = dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9)

        def params_for(lr, optimizer):
            p = net_params(cfg, X.shape[1], K, len(y_noisy), lr=lr,
                           epochs=cfg.collapse_epochs)
            p.update(optimizer)
            return p

        def clean_loss(net):
            proba = net.predict_proba(X_clean)
            return float(-np.mean(np.log(proba[np.arange(len(y_clean)), y_clean] + 1e-12)))

        def l2rw_row(variant, lr, *, warmup=0, optimizer=sgd, **kw):
            params = params_for(lr, optimizer)
            params.update(kw)
            out = dict(base, method="l2rw", variant=variant, lr=lr)
            net = None
            with Timer() as t, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    if warmup:
                        # A few plain epochs (no clean set: uniform weights), then
                        # L2RW continues from there for the remaining epochs.
                        net = L2RWClassifier(random_state=seed,
                                             **dict(params, max_epochs=warmup))
                        net.fit(X_rest, y_noisy)
                        net.set_params(max_epochs=cfg.collapse_epochs - warmup)
                        net.partial_fit(X_rest, y_noisy, X_val=X_clean, y_val=y_clean)
                    else:
                        net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean,
                                             random_state=seed, **params)
                        net.fit(X_rest, y_noisy)
                except FloatingPointError:
                    net = None
            out.update(wall_s=round(t.wall, 3), cpu_s=round(t.cpu, 3),
                       collapse_warned=any(issubclass(w.category, CleanLossWarning)
                                           for w in caught))
            if net is None:
                out.update(diverged=True, acc=1.0 / K, bal_acc=1.0 / K, max_share=1.0)
            else:
                h = [r for r in net.history if "clean_loss" in r]
                ess = [r["weight_ess"] for r in h]
                closs = [r["clean_loss"] for r in h]
                w = net.sample_weights_[-1]
                out.update(metrics(net, X_te, y_te), diverged=False,
                           ess_min=float(min(ess)), ess_last=float(ess[-1]),
                           zero_last=float(h[-1]["weight_zero_frac"]),
                           clean_loss_last=float(closs[-1]),
                           clean_loss_min=float(min(closs)),
                           clean_loss_rise=float(closs[-1] / max(min(closs), 1e-12)),
                           multiplier=float(cfg.batch_size * np.nanmax(w)),
                           ess_curve=[float(v) for v in ess],
                           clean_loss_curve=[float(v) for v in closs],
                           weight_ratio=(float("nan") if warmup
                                         else weight_ratio(net, flipped)))
                if not math.isfinite(out["clean_loss_last"]):
                    out["diverged"] = True
            rows.append(out)

        plain_loss = {}
        for lr in cfg.collapse_lrs:
            with Timer() as t:
                seed_torch(seed)
                net = NeuralNetClassifier(iterator_train__shuffle=True,
                                          **params_for(lr, sgd))
                try:
                    net.fit(X_rest, y_noisy)
                    loss, m = clean_loss(net), metrics(net, X_te, y_te)
                except (FloatingPointError, ValueError):
                    loss, m = float("inf"), dict(acc=1.0 / K, bal_acc=1.0 / K,
                                                 max_share=1.0)
            plain_loss[lr] = loss if math.isfinite(loss) else float("inf")
            rows.append(dict(base, method="plain", variant="plain", lr=lr,
                             clean_loss_last=loss, wall_s=round(t.wall, 3),
                             cpu_s=round(t.cpu, 3), **m))
            l2rw_row("L2RW", lr)
        # The rate a user would keep for plain training: the lowest clean-set loss.
        chosen = min(plain_loss, key=plain_loss.get)
        l2rw_row("clean_batch_size=16", chosen, clean_batch_size=16)
        warmup = min(3, cfg.collapse_epochs - 1)
        l2rw_row(f"{warmup} plain warm-up epochs", chosen, warmup=warmup)
        l2rw_row(f"{warmup} warm-up epochs + clean_batch_size=16", chosen, warmup=warmup,
                 clean_batch_size=16)
        if chosen / 5 not in cfg.collapse_lrs:
            l2rw_row("L2RW", chosen / 5)
        l2rw_row("Adam lr=1e-3 (benchmark setting)", cfg.lr,
                 optimizer=dict(optimizer=torch.optim.Adam))
        for r in rows:
            r["plain_choice"] = chosen
        return rows


# --- extras: why L2RW loses where it does ---------------------------------


def _prior_clean_set(X_clean, y_clean, prior):
    """Repeat clean rows so the class shares follow ``prior`` (rounded)."""
    present = prior[np.unique(y_clean)]
    reps = np.maximum(1, np.round(prior / present.min())).astype(int)
    idx = np.concatenate([np.repeat(np.flatnonzero(y_clean == k), reps[k])
                          for k in np.unique(y_clean)])
    return X_clean[idx], y_clean[idx]


def extras_noise_task(cfg, name, seed, data, cells, threads=1):
    """Two L2RW variants on the same cells as :func:`noise_task`.

    ``l2rw_both``: the clean rows also among the training rows (``fit(noisy +
    clean)``, the clean set as yardstick as before). ``l2rw_prior`` (imbalanced sets):
    the clean set's rows repeated so that its class shares follow the training
    rows' base rate (equivalent to weighting the clean loss by class).
    """
    with limited_threads(threads):
        rows = []
        X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        K = len(data["classes"])
        prior = np.bincount(y, minlength=K) / len(y)
        base = dict(part="noise", dataset=name, seed=seed)
        for clean, X_rest, X_clean, y_clean, noisy in noise_splits(X, y, cells, seed):
            for kind, rate, y_noisy, flipped in noisy:
                key = dict(base, kind=kind, rate=rate, clean=clean)
                with Timer() as t:
                    net, warned = fit_l2rw(cfg, np.vstack([X_rest, X_clean]),
                                           np.concatenate([y_noisy, y_clean]),
                                           X_clean, y_clean, K, seed)
                mask = np.concatenate([flipped, np.zeros(len(y_clean), bool)])
                _record(rows, key, "l2rw_both", metrics(net, X_te, y_te), t,
                        **_l2rw_extra(net, warned, mask))
                if prior.min() < 0.5 / K:  # a skewed set: adult, kdd_census
                    Xp, yp = _prior_clean_set(X_clean, y_clean, prior)
                    with Timer() as t:
                        net, warned = fit_l2rw(cfg, X_rest, y_noisy, Xp, yp, K, seed)
                    _record(rows, key, "l2rw_prior", metrics(net, X_te, y_te), t,
                            **_l2rw_extra(net, warned, flipped))
        return rows


def extras_imbalance_task(cfg, seed, pool, threads=1):
    """``l2rw_both`` on every imbalance cell; and the paper's 5,000 training rows at
    the largest proportion (plain, L2RW, L2RW with clean rows in X, ceiling)."""
    with limited_threads(threads):
        rows = []
        X, y, X_te, y_te = pool["X_train"], pool["y_train"], pool["X_test"], pool["y_test"]
        y_te = minority_codes(y_te, cfg.imb_classes[1])
        sizes = [(cfg.imb_train, cfg.imb_proportions)]
        if cfg.imb_paper_train and seed in cfg.imb_paper_seeds:
            sizes.append((cfg.imb_paper_train, (max(cfg.imb_proportions),)))
        for n_train, proportions in sizes:
            part = "imbalance" if n_train == cfg.imb_train else "imbalance_paper"
            base = dict(part=part, dataset=cfg.imb_dataset, seed=seed, n_train=n_train)
            if part == "imbalance_paper":
                X_bal, y_bal = imbalanced_rows(cfg, X, y, 0.5, n_train, seed)
                with Timer() as t:
                    net, _ = fit_plain(cfg, X_bal, y_bal, 2, seed)
                _record(rows, dict(base, proportion=None, clean=None), "ceiling",
                        metrics(net, X_te, y_te), t)
            for clean in cfg.imb_clean_sizes:
                X_rest, y_rest, X_clean, y_clean = imbalance_clean_split(cfg, X, y, clean,
                                                                         seed)
                for p in proportions:
                    X_imb, y_imb = imbalanced_rows(cfg, X_rest, y_rest, p, n_train, seed)
                    key = dict(base, proportion=p, clean=clean)
                    if part == "imbalance_paper":
                        run_methods(cfg, key, X_imb, y_imb, X_clean, y_clean, X_te, y_te,
                                    2, seed, mask=y_imb == 1,
                                    methods=("plain_noisy", "l2rw"), rows=rows)
                    with Timer() as t:
                        net, warned = fit_l2rw(cfg, np.vstack([X_imb, X_clean]),
                                               np.concatenate([y_imb, y_clean]),
                                               X_clean, y_clean, 2, seed)
                    mask = np.concatenate([y_imb == 1, y_clean == 1])
                    _record(rows, key, "l2rw_both", metrics(net, X_te, y_te), t,
                            **_l2rw_extra(net, warned, mask))
        return rows


def gradnorm_task(cfg, seed, data, threads=1):
    """How much longer L2RW's weighted gradient is than plain training's.

    L2RW is trained (SGD, momentum 0.9) at ``cfg.gradnorm_lr`` on the collapse
    study's data (BackgroundFlip 40%); after chosen epochs, on 20 training batches,
    the weights of :func:`sk_l2rw.weights.normalize_weights` are computed from the
    exact meta-gradients and ``|grad sum_i w_i f_i| / |grad mean_i f_i|`` is recorded
    with the batch's weight_ess.
    """
    import torch

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.meta_gradient import jvp_meta_gradients
    from sk_l2rw.noise import flip_labels, split_clean
    from sk_l2rw.weights import effective_sample_share, normalize_weights

    with limited_threads(threads):
        rows = []
        X, y = data["X_train"], data["y_train"]
        K = len(data["classes"])
        X_rest, y_rest, X_clean, y_clean = split_clean(X, y, cfg.collapse_clean,
                                                       random_state=seed)
        y_noisy, _ = flip_labels(y_rest, cfg.rate, "background", background_class=0,
                                 random_state=seed)
        params = net_params(cfg, X.shape[1], K, len(y_noisy), lr=cfg.gradnorm_lr,
                            epochs=1)
        params.update(optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                      warm_start=True)
        net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed,
                             **params)
        Xt, yt = torch.as_tensor(X_rest), torch.as_tensor(y_noisy)
        Xc, yc = torch.as_tensor(X_clean), torch.as_tensor(y_clean)
        loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
        rng = np.random.RandomState(seed)
        done = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in sorted(cfg.gradnorm_epochs):
                while done < epoch:
                    net.partial_fit(X_rest, y_noisy)
                    done += 1
                module = net.module_
                params_list = [p for p in module.parameters() if p.requires_grad]
                # The net's device ("auto" is CUDA where there is one).
                device = params_list[0].device
                ratios, shares = [], []
                for _ in range(20):
                    idx = torch.as_tensor(rng.choice(len(y_noisy), cfg.batch_size,
                                                     replace=False))
                    xb, yb = Xt[idx].to(device), yt[idx].to(device)
                    u = jvp_meta_gradients(module, loss_fn, xb, yb, Xc.to(device),
                                           yc.to(device), lr=cfg.gradnorm_lr)
                    w = normalize_weights(u)
                    losses = loss_fn(module(xb), yb)
                    g_w = torch.autograd.grad((w * losses).sum(), params_list,
                                              retain_graph=True)
                    g_u = torch.autograd.grad(losses.mean(), params_list)
                    norm = lambda g: torch.sqrt(sum((t * t).sum() for t in g))  # noqa
                    ratios.append(float(norm(g_w) / norm(g_u)))
                    shares.append(float(effective_sample_share(w)))
                rows.append(dict(part="gradnorm", dataset=cfg.collapse_dataset,
                                 seed=seed, method="l2rw", epoch=epoch,
                                 lr=cfg.gradnorm_lr, ratio_median=float(np.median(ratios)),
                                 ratio_max=float(np.max(ratios)),
                                 ess_median=float(np.median(shares))))
        return rows


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def plan(cfg, log=print):
    """Load the data (in this process) and return the list of (label, fn, args)."""
    pools = {}

    def pool(name):
        if name not in pools:
            start = time.perf_counter()
            pools[name] = load_pool(name)
            log(f"loaded {name} in {time.perf_counter() - start:.1f} s")
        return pools[name]

    tasks = []
    parts = set(cfg.parts)
    # Noise: the main grid plus the noise-rate sweep, merged per (data set, seed).
    for name, size in cfg.datasets.items():
        if not parts & {"noise", "extras"}:
            break
        for seed in cfg.seeds:
            cells = [(k, cfg.rate, c) for k in cfg.kinds for c in cfg.clean_sizes]
            if name == cfg.sweep_dataset:
                cells += [("background", r, cfg.sweep_clean) for r in cfg.sweep_rates]
            cells = list(dict.fromkeys(cells))
            data = prepare(name, pool(name), size, seed)
            weight = len(cells) * (len(data["y_train"]) * data["X_train"].shape[1]) ** 0.8
            if "noise" in parts:
                tasks.append((weight, f"noise {name} seed {seed}", noise_task,
                              (cfg, name, seed, data, cells)))
            if "extras" in parts:
                main_cells = [c for c in cells if c[1] == cfg.rate]
                tasks.append((weight / 4, f"extras {name} seed {seed}", extras_noise_task,
                              (cfg, name, seed, data, main_cells)))
    if cfg.imb_proportions and parts & {"imbalance", "extras"}:
        data = prepare_imbalance(cfg, pool(cfg.imb_dataset))
        for seed in (cfg.imb_seeds or cfg.seeds):
            weight = (len(cfg.imb_proportions) * len(cfg.imb_clean_sizes)
                      * (cfg.imb_train * data["X_train"].shape[1]) ** 0.8)
            if "imbalance" in parts:
                tasks.append((weight, f"imbalance seed {seed}", imbalance_task,
                              (cfg, seed, data)))
            if "extras" in parts:
                tasks.append((weight / 3, f"extras imbalance seed {seed}",
                              extras_imbalance_task, (cfg, seed, data)))
    if cfg.collapse_kinds and parts & {"collapse", "extras"}:
        for seed in sorted(set(cfg.collapse_seeds) | set(cfg.gradnorm_seeds)):
            data = prepare_collapse(cfg, pool(cfg.collapse_dataset), seed)
            weight = 12 * (len(data["y_train"]) * data["X_train"].shape[1]) ** 0.8
            for kind in cfg.collapse_kinds:
                if "collapse" in parts and seed in cfg.collapse_seeds:
                    tasks.append((weight, f"collapse {kind} seed {seed}", collapse_task,
                                  (cfg, kind, seed, data)))
            if "extras" in parts and seed in cfg.gradnorm_seeds and cfg.gradnorm_epochs:
                tasks.append((weight / 2, f"gradient length seed {seed}", gradnorm_task,
                              (cfg, seed, data)))
    tasks.sort(key=lambda t: -t[0])  # longest first: better packing on the workers
    return [(label, fn, args) for _, label, fn, args in tasks]


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


class Results:
    """Per-seed rows, grouped for the tables."""

    def __init__(self, rows):
        self.rows = rows

    def values(self, metric="acc", **key):
        out = []
        for r in self.rows:
            if all(r.get(k) == v for k, v in key.items()):
                out.append(r.get(metric))
        return out

    def noise(self, dataset, kind, rate, clean, method, metric="acc"):
        """Values over seeds; ceiling and clean-only rows hold for every noise cell."""
        if method == "ceiling":
            return self.values(metric, part="noise", dataset=dataset, method="ceiling")
        if method == "clean_only":
            return self.values(metric, part="noise", dataset=dataset, clean=clean,
                               method="clean_only")
        return self.values(metric, part="noise", dataset=dataset, kind=kind, rate=rate,
                           clean=clean, method=method)

    def imbalance(self, proportion, clean, method, metric="bal_acc"):
        if method == "ceiling":
            return self.values(metric, part="imbalance", method="ceiling")
        if method == "clean_only":
            return self.values(metric, part="imbalance", clean=clean, method="clean_only")
        return self.values(metric, part="imbalance", proportion=proportion, clean=clean,
                           method=method)


NOISE_COLUMNS = ("plain_noisy", "plain_both", "clean_only", "cleanlab", "hgb", "l2rw",
                 "ceiling", "plain_es", "l2rw_both")
IMB_COLUMNS = ("plain_noisy", "plain_both", "clean_only", "class_balanced", "cleanlab",
               "hgb", "l2rw", "ceiling", "plain_es", "l2rw_both")


def _title(method, part):
    if part == "imbalance" and method in ("plain_noisy", "plain_es"):
        return METHODS[method].replace("noisy", "imbalanced")
    if part == "imbalance" and method == "plain_both":
        return "plain (imbalanced+clean)"
    if part == "imbalance" and method == "hgb":
        return "HGB (imbalanced+clean)"
    return METHODS[method]


def compare(get, columns):
    """Means per method, the best requested baseline and L2RW's margin to it."""
    means = {m: stats(get(m)) for m in columns}
    baselines = {m: means[m][0] for m in columns if m in GOAL_BASELINES
                 and math.isfinite(means[m][0])}
    best = max(baselines, key=baselines.get) if baselines else None
    l2rw = means.get("l2rw", (float("nan"),))[0]
    margin = l2rw - baselines[best] if best else float("nan")
    return means, best, margin


def _cells(means, columns, best):
    top = max((means[m][0] for m in columns if m in GOAL_BASELINES + ("l2rw",)
               and math.isfinite(means[m][0])), default=float("nan"))
    out = []
    for m in columns:
        mean, std, n = means[m]
        text = percent(mean, std, n)
        if m in GOAL_BASELINES + ("l2rw",) and math.isfinite(mean) and mean == top:
            text = f"**{text}**"
        out.append(text)
    return out


def noise_tables(res, cfg, metric="acc", datasets=None):
    lines = []
    datasets = datasets or [d for d in ("digits",) + MAIN_SETS if d in cfg.datasets]
    columns = [m for m in NOISE_COLUMNS if res.values(part="noise", method=m)]
    for clean in cfg.clean_sizes:
        for kind in cfg.kinds:
            lines += ["", f"### {KIND_NAMES[kind]} {cfg.rate:.0%}, {clean} clean rows per "
                      "class", ""]
            rows = []
            for d in datasets:
                means, best, margin = compare(
                    lambda m: res.noise(d, kind, cfg.rate, clean, m, metric), columns)
                rows.append([d] + _cells(means, columns, best)
                            + [f"{100 * margin:+.1f} ({METHODS[best]})" if best else "n/a"])
            lines += markdown_table(["data set"] + [METHODS[m] for m in columns]
                            + ["L2RW − best baseline (points)"], rows)
    return lines


def imbalance_tables(res, cfg):
    lines = []
    columns = [m for m in IMB_COLUMNS if res.values(part="imbalance", method=m)]
    for clean in cfg.imb_clean_sizes:
        lines += ["", f"### {clean} clean rows per class (balanced accuracy, %)", ""]
        rows = []
        for p in cfg.imb_proportions:
            means, best, margin = compare(lambda m: res.imbalance(p, clean, m), columns)
            rows.append([f"{p}"] + _cells(means, columns, best)
                        + [f"{100 * margin:+.1f} ({_title(best, 'imbalance')})"
                           if best else "n/a"])
        lines += markdown_table(["majority proportion"] + [_title(m, "imbalance") for m in columns]
                        + ["L2RW − best baseline (points)"], rows)
    return lines


def goals(res, cfg):
    """The issue's three goals, judged on means over seeds.

    Returns a list with one dict per goal: ``key`` (``(kind, metric)``,
    ``("uniform", clean)`` or ``("imbalance", clean)``), ``ok``, ``margins`` (data set
    -> L2RW minus the best baseline; for imbalance, L2RW minus the ceiling), ``wins``
    (sets where L2RW wins; noise goals) and ``cells``, the goal's table row.
    """
    found = []
    columns = NOISE_COLUMNS
    sets = [d for d in MAIN_SETS if d in cfg.datasets]
    clean = min(cfg.clean_sizes)
    for kind in ("background", "pair"):
        if kind not in cfg.kinds:
            continue
        for metric in ("acc", "bal_acc"):
            wins, detail, margins = 0, [], {}
            for d in sets:
                means, best, margin = compare(
                    lambda m: res.noise(d, kind, cfg.rate, clean, m, metric), columns)
                es = means["plain_es"][0]
                win = math.isfinite(margin) and margin > 0
                wins += win
                margins[d] = margin
                detail.append(f"{d} {100 * margin:+.1f}"
                              + ("" if not math.isfinite(es) or
                                 means["l2rw"][0] > es else " (plain ES better)"))
            if not sets:
                continue
            need = min(4, len(sets))
            ok = wins >= need
            found.append(dict(key=(kind, metric), ok=ok, wins=wins, margins=margins, cells=[
                f"{KIND_NAMES[kind]} 40%, {clean} clean/class: L2RW beats every "
                         f"baseline on ≥ {need} of {len(sets)} sets "
                         f"({'accuracy' if metric == 'acc' else 'balanced accuracy'})",
                f"{wins} of {len(sets)}: " + ", ".join(detail), "PASS" if ok else "FAIL"]))
    if "uniform" in cfg.kinds and cfg.datasets:
        for c in cfg.clean_sizes:
            ok_all, detail, margins = True, [], {}
            for d in [d for d in ("digits",) + MAIN_SETS if d in cfg.datasets]:
                means, best, margin = compare(
                    lambda m: res.noise(d, "uniform", cfg.rate, c, m), columns)
                ok = math.isfinite(margin) and margin >= -0.01
                ok_all &= ok
                margins[d] = margin
                detail.append(f"{d} {100 * margin:+.1f}{'' if ok else ' ✗'}")
            found.append(dict(key=("uniform", c), ok=ok_all, margins=margins, cells=[
                f"UniformFlip 40%, {c} clean/class: L2RW within 1 point of the best "
                "baseline, or better, on every set", ", ".join(detail),
                "PASS" if ok_all else "FAIL"]))
    if cfg.imb_proportions:
        p = max(cfg.imb_proportions)
        for c in cfg.imb_clean_sizes:
            l2rw = stats(res.imbalance(p, c, "l2rw"))[0]
            ceiling = stats(res.imbalance(p, c, "ceiling"))[0]
            plain = stats(res.imbalance(p, c, "plain_noisy"))[0]
            gap = l2rw - ceiling
            ok = math.isfinite(gap) and gap >= -0.03
            found.append(dict(key=("imbalance", c), ok=ok, margins={"4-vs-9": gap}, cells=[
                f"4-vs-9 at {p}, {c} clean/class: L2RW balanced accuracy within 3 points "
                "of the balanced-data ceiling",
                f"L2RW {100 * l2rw:.1f}, ceiling {100 * ceiling:.1f} ({100 * gap:+.1f}); "
                f"plain training {100 * plain:.1f}", "PASS" if ok else "FAIL"]))
    return found


def evaluate_goals(res, cfg):
    """:func:`goals` as the report's table, and ``{key: ok}``."""
    found = goals(res, cfg)
    lines = markdown_table(["goal", "numbers (L2RW − best baseline, points)", "verdict"],
                           [g["cells"] for g in found])
    return lines, {g["key"]: g["ok"] for g in found}


def losses_list(res, cfg):
    """Every cell where L2RW is below the best requested baseline."""
    out = []
    for d in [d for d in ("digits",) + MAIN_SETS if d in cfg.datasets]:
        for clean in cfg.clean_sizes:
            for kind in cfg.kinds:
                means, best, margin = compare(
                    lambda m: res.noise(d, kind, cfg.rate, clean, m), NOISE_COLUMNS)
                if math.isfinite(margin) and margin < 0:
                    out.append(f"- {d}, {KIND_NAMES[kind]}, {clean} clean/class: L2RW "
                               f"{100 * means['l2rw'][0]:.1f} vs {METHODS[best]} "
                               f"{100 * means[best][0]:.1f} ({100 * margin:+.1f})")
    for clean in cfg.imb_clean_sizes:
        for p in cfg.imb_proportions:
            means, best, margin = compare(lambda m: res.imbalance(p, clean, m), IMB_COLUMNS)
            if math.isfinite(margin) and margin < 0:
                out.append(f"- 4-vs-9 at {p}, {clean} clean/class: L2RW "
                           f"{100 * means['l2rw'][0]:.1f} vs {_title(best, 'imbalance')} "
                           f"{100 * means[best][0]:.1f} ({100 * margin:+.1f})")
    return out or ["- nowhere"]


def diagnostics_table(res, cfg):
    rows = []
    for d in [d for d in ("digits",) + MAIN_SETS if d in cfg.datasets]:
        for clean in cfg.clean_sizes:
            for kind in cfg.kinds:
                sel = [r for r in res.rows if r["part"] == "noise" and r["dataset"] == d
                       and r.get("kind") == kind and r.get("rate") == cfg.rate
                       and r.get("clean") == clean and r["method"] == "l2rw"]
                if not sel:
                    continue
                f = lambda k: np.nanmean([r.get(k, np.nan) for r in sel])  # noqa: E731
                warned = sum(bool(r.get("collapse_warned")) for r in sel)
                failed = sum("failed" in r for r in sel)
                rows.append([d, KIND_NAMES[kind], str(clean), f"{f('weight_ess'):.2f}",
                             f"{f('weight_zero_frac'):.2f}", f"{f('weight_ratio'):.2f}",
                             f"{f('clean_loss'):.3f}", f"{warned}/{len(sel)}",
                             f"{failed}/{len(sel)}"])
    for clean in cfg.imb_clean_sizes:
        for p in cfg.imb_proportions:
            sel = [r for r in res.rows if r["part"] == "imbalance"
                   and r.get("proportion") == p and r.get("clean") == clean
                   and r["method"] == "l2rw"]
            if not sel:
                continue
            f = lambda k: np.nanmean([r.get(k, np.nan) for r in sel])  # noqa: E731
            rows.append([f"{cfg.imb_dataset} 4-vs-9", f"imbalance {p}", str(clean),
                         f"{f('weight_ess'):.2f}", f"{f('weight_zero_frac'):.2f}",
                         f"{f('weight_ratio'):.2f}", f"{f('clean_loss'):.3f}",
                         f"{sum(bool(r.get('collapse_warned')) for r in sel)}/{len(sel)}",
                         f"{sum('failed' in r for r in sel)}/{len(sel)}"])
    return markdown_table(["data set", "setting", "clean/class", "weight_ess (last epoch)",
                   "weight_zero_frac", "weight ratio flipped (minority) / rest",
                   "clean_loss (last epoch)", "collapse warning", "diverged"], rows)


def collapse_tables(res, cfg):
    lines = []
    for kind in cfg.collapse_kinds:
        sel = [r for r in res.rows if r["part"] == "collapse" and r["kind"] == kind]
        if not sel:
            continue
        chosen = sorted({r["plain_choice"] for r in sel})
        lines += ["", f"#### {KIND_NAMES[kind]} {cfg.rate:.0%}", "",
                  "Learning rate plain training would pick (lowest clean-set loss), per "
                  f"seed: {', '.join(str(c) for c in chosen)}.", ""]
        groups = {}
        for r in sel:
            groups.setdefault((r["method"], r["variant"], r["lr"]), []).append(r)
        order = sorted(groups, key=lambda k: (k[0] != "plain", k[1] != "plain",
                                              k[1] != "L2RW", k[1], -k[2]))
        rows = []
        for key in order:
            g = groups[key]
            method, variant, lr = key
            acc = stats([r["acc"] for r in g])
            collapsed = sum(r.get("diverged", False) or r["max_share"] > COLLAPSE_SHARE
                            or r.get("clean_loss_rise", 1.0) > EXPLODED for r in g)

            def f(k):
                v = [r.get(k, np.nan) for r in g]
                v = [x for x in v if x is not None and np.isfinite(x)]
                return float(np.mean(v)) if v else float("nan")
            if method == "plain":
                rows.append(["plain", f"{lr:g}", percent(*acc), f"{collapsed}/{len(g)}",
                             "", "", "", f"{f('clean_loss_last'):.3g}", "", ""])
                continue
            def fmt(value, spec):
                return "–" if not math.isfinite(value) else format(value, spec)

            rows.append([variant, f"{lr:g}", percent(*acc), f"{collapsed}/{len(g)}",
                         fmt(f("ess_min"), ".3f"), fmt(f("zero_last"), ".2f"),
                         fmt(f("multiplier"), ".0f"), fmt(f("clean_loss_last"), ".3g"),
                         fmt(f("clean_loss_rise"), ".3g"),
                         f"{sum(bool(r.get('collapse_warned')) for r in g)}/{len(g)}"])
        lines += markdown_table(["training", "lr", "accuracy %", "collapsed or diverged",
                         "min weight_ess over epochs", "weight_zero_frac (last)",
                         "largest row step multiplier (batch × max w)",
                         "clean_loss (last)", "clean_loss last / best",
                         "collapse warning"], rows)
    return lines


def prior_table(res, cfg):
    """Adult and kdd_census: L2RW with its clean set weighted to the base rate."""
    rows = []
    for d in ("adult", "kdd_census"):
        for clean in cfg.clean_sizes:
            for kind in cfg.kinds:
                got = {m: (stats(res.noise(d, kind, cfg.rate, clean, m)),
                           stats(res.noise(d, kind, cfg.rate, clean, m, "bal_acc")))
                       for m in ("l2rw", "l2rw_prior")}
                if not math.isfinite(got["l2rw_prior"][0][0]):
                    continue
                _, best, _ = compare(lambda m: res.noise(d, kind, cfg.rate, clean, m),
                                     NOISE_COLUMNS)
                best_acc = stats(res.noise(d, kind, cfg.rate, clean, best))
                rows.append([d, KIND_NAMES[kind], str(clean),
                             percent(*got["l2rw"][0]), percent(*got["l2rw"][1]),
                             percent(*got["l2rw_prior"][0]), percent(*got["l2rw_prior"][1]),
                             f"{percent(*best_acc)} ({METHODS[best]})"])
    if not rows:
        return []
    return markdown_table(["data set", "noise", "clean/class", "L2RW accuracy",
                   "L2RW balanced acc.", "L2RW, base-rate clean set: accuracy",
                   "… balanced acc.", "best baseline, accuracy"], rows)


def paper_size_table(res, cfg):
    sel = [r for r in res.rows if r["part"] == "imbalance_paper"]
    if not sel:
        return []
    n = sel[0]["n_train"]
    p = max(cfg.imb_proportions)
    rows = []
    for clean in cfg.imb_clean_sizes:
        cells = []
        for m in ("plain_noisy", "l2rw", "l2rw_both", "ceiling"):
            vals = [r["bal_acc"] for r in sel if r["method"] == m
                    and (m == "ceiling" or r.get("clean") == clean)]
            cells.append(percent(*stats(vals)))
        rows.append([str(clean)] + cells)
    seeds = sorted({r["seed"] for r in sel})
    return [f"{n:,} training rows at proportion {p} (the paper's size; seeds "
            f"{', '.join(map(str, seeds))}); balanced accuracy %:", ""] + markdown_table(
        ["clean/class", "plain (imbalanced)", "L2RW", "L2RW, clean rows also in X*",
         f"ceiling ({n:,} balanced rows)"], rows)


def gradnorm_table(res, cfg):
    sel = [r for r in res.rows if r["part"] == "gradnorm"]
    if not sel:
        return []
    rows = []
    for epoch in sorted({r["epoch"] for r in sel}):
        g = [r for r in sel if r["epoch"] == epoch]
        rows.append([str(epoch), f"{np.mean([r['ratio_median'] for r in g]):.2f}",
                     f"{np.mean([r['ratio_max'] for r in g]):.2f}",
                     f"{np.mean([r['ess_median'] for r in g]):.3f}"])
    seeds = sorted({r["seed"] for r in sel})
    return [f"L2RW trained with SGD (momentum 0.9) at lr={sel[0]['lr']:g} on the study's "
            f"data (BackgroundFlip 40%, seeds {', '.join(map(str, seeds))}); after the "
            "given epoch, on 20 random training batches, the length of L2RW's weighted "
            "gradient `|grad Σ w_i f_i|` over the length of plain training's gradient "
            "`|grad mean f_i|` at the same parameters (means over seeds of the median "
            "and the largest of the 20 batches):", ""] + markdown_table(
        ["after epoch", "length ratio, median", "length ratio, largest",
         "weight_ess, median"], rows)


def render_charts(res, cfg, out_dir, prefix="quality"):
    """The two figures of the issue plus the collapse curves; returns written paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: figures skipped (pip install matplotlib)")
        return []
    paths = []
    colors = {"plain_noisy": "tab:gray", "plain_both": "tab:brown", "plain_es": "tab:olive",
              "clean_only": "tab:purple", "class_balanced": "tab:pink",
              "cleanlab": "tab:green", "hgb": "tab:orange", "ceiling": "black",
              "l2rw": "tab:red", "l2rw_both": "tab:cyan", "l2rw_prior": "tab:blue"}
    dashed = ("ceiling", "plain_es", "l2rw_both")
    # 1. accuracy vs noise rate
    d = cfg.sweep_dataset
    if d in cfg.datasets and cfg.sweep_rates:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for m in NOISE_COLUMNS:
            pts = [stats(res.noise(d, "background", r, cfg.sweep_clean, m))
                   for r in cfg.sweep_rates]
            if sum(math.isfinite(p[0]) for p in pts) < 2:
                continue
            mean = np.array([100 * p[0] for p in pts])
            std = np.array([100 * p[1] for p in pts])
            style = "--" if m in dashed else "-"
            ax.errorbar(cfg.sweep_rates, mean, yerr=std, label=METHODS[m], color=colors[m],
                        ls=style, marker="o", ms=3, capsize=2,
                        lw=2.2 if m == "l2rw" else 1.2)
        ax.set_xlabel("BackgroundFlip noise rate")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{d}: {cfg.sweep_clean} clean rows per class, "
                     f"{len(cfg.seeds)} seed(s), mean ± std")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        path = out_dir / f"{prefix}_noise_rate.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    # 2. 4-vs-9 error vs majority proportion
    if cfg.imb_proportions:
        fig, axes = plt.subplots(1, len(cfg.imb_clean_sizes),
                                 figsize=(5.5 * len(cfg.imb_clean_sizes), 4.5),
                                 squeeze=False)
        for ax, clean in zip(axes[0], cfg.imb_clean_sizes):
            for m in IMB_COLUMNS:
                pts = [stats(res.imbalance(p, clean, m)) for p in cfg.imb_proportions]
                if sum(math.isfinite(p[0]) for p in pts) < 2:
                    continue
                err = np.array([100 * (1 - p[0]) for p in pts])
                std = np.array([100 * p[1] for p in pts])
                ax.errorbar(cfg.imb_proportions, err, yerr=std, color=colors[m],
                            label=_title(m, "imbalance"), marker="o", ms=3, capsize=2,
                            ls="--" if m in dashed else "-",
                            lw=2.2 if m == "l2rw" else 1.2)
            ax.set_xlabel("proportion of the majority class (4)")
            ax.set_ylabel("test error on balanced 4/9 test set (%)")
            ax.set_title(f"{cfg.imb_dataset} 4 vs 9, {clean} clean rows per class")
            ax.set_yscale("symlog", linthresh=10)
            ax.grid(alpha=0.3)
        if axes[0][0].get_legend_handles_labels()[0]:
            axes[0][0].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        path = out_dir / f"{prefix}_imbalance.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    # 3. collapse curves: seed 0, first kind
    sel = [r for r in res.rows if r["part"] == "collapse" and r["method"] == "l2rw"
           and r["seed"] == min(cfg.collapse_seeds, default=0) and "ess_curve" in r
           and r["kind"] == (cfg.collapse_kinds[0] if cfg.collapse_kinds else None)]
    if sel:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for r in sel:
            label = f"{r['variant']}, lr={r['lr']:g}"
            epochs = np.arange(1, len(r["ess_curve"]) + 1)
            epochs = epochs + (cfg.collapse_epochs - len(epochs))
            a1.plot(epochs, r["clean_loss_curve"], label=label)
            a2.plot(epochs, r["ess_curve"], label=label)
        a1.set_yscale("log")
        a1.set_xlabel("epoch")
        a1.set_ylabel("clean_loss")
        a2.set_xlabel("epoch")
        a2.set_ylabel("weight_ess")
        a2.axhline(0.05, color="k", ls=":", lw=1)
        a1.set_title(f"L2RW with SGD on {cfg.collapse_dataset} "
                     f"({''.join(map(str, cfg.collapse_classes))}), "
                     f"{KIND_NAMES[sel[0]['kind']]} 40%, seed {sel[0]['seed']}",
                     fontsize=9)
        a1.legend(fontsize=6)
        for a in (a1, a2):
            a.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{prefix}_collapse.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def time_table(res):
    totals = {}
    for r in res.rows:
        if r["part"] in ("noise", "imbalance"):
            totals.setdefault(r["method"], [0.0, 0])
            totals[r["method"]][0] += r.get("cpu_s", 0.0)
            totals[r["method"]][1] += 1
    rows = [[METHODS[m], str(n), f"{s:.0f}", f"{s / max(n, 1):.2f}"]
            for m, (s, n) in totals.items() if m != "plain_es"]
    return markdown_table(["method", "fits", "CPU s, total", "CPU s per fit"], rows)


def protocol_lines(cfg):
    sizes = ", ".join(f"{d} {'all' if n is None else f'{n:,}'} train / "
                      f"{'all' if m is None else f'{m:,}'} test"
                      for d, (n, m) in cfg.datasets.items())
    if cfg.module == "lenet":
        module = ("the paper's LeNet on the 28x28 images (conv 5x5 with 6 channels, "
                  "ReLU, max-pool 2; conv 5x5 with 16 channels, ReLU, max-pool 2; "
                  "linear 256 → 120 → 84 → n_classes with ReLUs), returning logits")
    else:
        module = (f"an MLP `n_features → {cfg.hidden} (ReLU) → n_classes` returning "
                  "logits")
    lines = [
        "**Every net** (plain, class-balanced, clean-only, cleanlab's inner net, the "
        f"ceiling and L2RW): the same module, {module}, `CrossEntropyLoss`, "
        f"`torch.optim.Adam(lr={cfg.lr:g})` (default betas, no weight decay), batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs or {cfg.min_steps} optimizer steps "
        "if that is more (so that a net trained on a few dozen clean rows still takes "
        "enough steps), shuffled batches, no validation split; the model after the "
        "last epoch is scored.",
        "",
        "**How the setting was chosen:** one fixed setting for all methods and data "
        "sets, fixed before any run: Adam at its default learning rate (torch's and "
        "scikit-learn's `MLPClassifier`'s default) and a common batch size. Nothing is "
        "tuned per data set or per method; test labels are used only for the final "
        "scores. A user can follow it as is."
        + (" (The collapse study below shows why a fixed *SGD* rate would not be a "
           "fair choice: the rate that suits plain training can be too large for L2RW.)"
           if cfg.collapse_kinds else ""),
        "",
        "**L2RWClassifier**: all its defaults (`meta_gradient='auto'`, "
        "`clean_batch_size=None` i.e. min(batch, clean set)), `random_state=seed`, "
        "trained on the noisy rows with the clean set as `clean_X, clean_y`.",
        "",
        "**HGB**: `HistGradientBoostingClassifier(early_stopping=True, "
        f"max_iter={cfg.hgb_max_iter}, random_state=seed)`, other parameters default; "
        "early stopping holds out 10% of its (noisy) training rows, as scikit-learn "
        "does by default above 10,000 rows. Trained on noisy + clean rows.",
        "",
        f"**cleanlab**: `CleanLearning(clf=<the same skorch net>, cv_n_folds="
        f"{cfg.cv_folds}, seed=seed, find_label_issues_kwargs={{'n_jobs': 1}})` on "
        "noisy + clean rows: out-of-fold probabilities, "
        "`find_label_issues`, then the net refit on the rows not flagged.",
        "",
        "**plain (noisy), best clean-loss epoch\\*** is an extra baseline, not in the "
        "goals: the same fit as *plain (noisy)*, with the parameters of the epoch whose "
        "clean-set loss was lowest (early stopping on the clean set, as a user with a "
        "clean set might do).",
        "",
        "**Class-balanced** (imbalance only): the plain net on imbalanced + clean rows "
        "with `CrossEntropyLoss(weight=n / (K · count_k))`.",
        "",
        "**Ceiling**: the same net on every training row with its true label (noise), "
        f"or on {cfg.imb_train:,} balanced rows (imbalance).",
        "",
        f"**Imbalance** ({cfg.imb_dataset} {cfg.imb_classes[0]} vs {cfg.imb_classes[1]}, "
        f"{cfg.imb_classes[0]} the majority): a balanced clean set is drawn first from "
        "the training rows of the two classes, then "
        f"`make_imbalanced(rest, p, n_samples={cfg.imb_train}, seed)`; the test set has "
        f"{cfg.imb_test_per_class} rows of each class (so accuracy equals balanced "
        "accuracy).",
        "",
        "**Seeds** drive the subsample, the clean split, the noise, the net's "
        "initialisation and shuffling (`torch.manual_seed` for skorch nets, "
        "`random_state` for L2RW), cleanlab's folds and HGB. Tables give the mean ± "
        "standard deviation over seeds, in %. **Bold**: the best of L2RW and the "
        "requested baselines (ceiling and the starred extra excluded).",
    ]
    if cfg.datasets:  # label noise ran
        at = lines.index(next(x for x in lines if x.startswith("**Imbalance**")))
        lines[at:at] = [
            f"**Data**: {sizes}. A fixed train/test split per set (the official one, else "
            "`datasets.load(random_state=0)`'s stratified 75/25), then per seed a stratified "
            "subsample of it. Preprocessing is fitted on the training rows only "
            "(standard scaling for letter; `adult_preprocessor()` / "
            "`kdd_census_preprocessor()` for adult and kdd_census; image pixels stay in "
            "[0, 1]). The clean set is `split_clean(X, y, n_per_class, seed)` from the "
            "training rows, which leaves them; the remaining rows get "
            f"`flip_labels(y, {cfg.rate}, kind, background_class=<most frequent training "
            "class>, seed)`. Test labels are never corrupted. Adult (24% positive) and "
            "kdd_census (6% positive) are imbalanced: their clean sets, with the same count "
            "per class, are balanced while their test sets are not (see the findings).",
            "",
        ]
    return lines


def render_markdown(res, cfg, *, command, started, elapsed, jobs, load, info,
                    merged=()):
    ver = info["versions"]
    also = "".join(f"  \nMerged with the rows of: `{m['command']}` "
                   f"({m['elapsed'] / 60:.1f} min), rendered by `python "
                   "-m benchmarks.quality --render RAW1 RAW2`" for m in merged)
    lines = [
        "# sk_l2rw quality benchmark: L2RW against the baselines"
        + (" (LeNet)" if cfg.module == "lenet" else ""),
        "",
        f"Command: `{command}`{also}  ",
        f"Mode: {cfg.mode}  ",
        f"Date: {started:%Y-%m-%d %H:%M} UTC  ",
        f"Wall time of the whole run: {elapsed / 60:.1f} min  ",
        f"Machine: {info['machine']}; {jobs} worker process(es), 1 torch and 1 OpenMP "
        "thread each  ",
        f"Load average at start / end: {load[0]} / {load[1]} (the machine is shared; "
        "accuracy does not depend on it)  ",
        f"Versions: {ver}",
        "",
        f"Seeds: {', '.join(map(str, cfg.seeds))}. Noise rate {cfg.rate:.0%}. "
        f"Clean rows per class: {', '.join(map(str, cfg.clean_sizes))}.",
    ]
    if cfg.mode != "full":
        lines += ["", f"**This is a `{cfg.mode}` run: small data, few epochs and seeds. "
                  "Its numbers only show that every part runs; they are not results.**"]
    lines += ["", "## Goals", ""]
    goal_lines, _ = evaluate_goals(res, cfg)
    lines += goal_lines
    lines += ["", "Baselines counted: plain (noisy), plain (noisy+clean), clean only, "
              "class-balanced (imbalance), cleanlab, HGB. The ceiling and the starred "
              "extra are not baselines; \"(plain ES better)\" marks sets where the extra "
              "early-stopped plain net beats L2RW.", "",
              "## Where L2RW loses", "", "Every cell where L2RW's mean is below the best "
              "requested baseline's (accuracy; balanced accuracy for imbalance):", ""]
    lines += losses_list(res, cfg)
    if cfg.mode == "full":
        lines += ["", "## Findings", "", findings_pointer(
            "LeNet" if cfg.module == "lenet" else "MLP")]
    lines += ["", "## Protocol", ""] + protocol_lines(cfg)
    if cfg.datasets:
        lines += ["", "## Label noise: test accuracy (%)"]
        lines += noise_tables(res, cfg)
    imb_sets = [d for d in ("adult", "kdd_census") if d in cfg.datasets]
    if imb_sets:
        lines += ["", "## Label noise on the imbalanced sets: balanced accuracy (%)", "",
                  "Adult and kdd_census have skewed classes (24% and 6% positive) while "
                  "their clean sets are balanced; L2RW then learns for the clean set's "
                  "(balanced) distribution. Their balanced accuracy:"]
        lines += noise_tables(res, cfg, metric="bal_acc", datasets=imb_sets)
    if cfg.imb_proportions:
        lines += ["", f"## Class imbalance: {cfg.imb_dataset} "
                  f"{cfg.imb_classes[0]} vs {cfg.imb_classes[1]}"]
        lines += imbalance_tables(res, cfg)
    extra = prior_table(res, cfg)
    paper = paper_size_table(res, cfg)
    grad = gradnorm_table(res, cfg)
    if extra or paper or grad:
        lines += ["", "## Extras: why L2RW loses where it does", "",
                  "Starred columns in the tables above and the tables here are L2RW "
                  "variants a user can run today (no change to the estimator); they are "
                  "not part of the goals. *L2RW, clean rows also in X*: "
                  "`fit(noisy + clean rows)` with the same clean set as yardstick. "
                  "*Base-rate clean set*: the clean rows of each class repeated so that "
                  "the clean set's class shares follow the training rows' base rate "
                  "(the same as weighting the clean loss by class)."]
        if extra:
            lines += ["", "### Skewed sets: a clean set weighted to the base rate", ""]
            lines += extra
        if paper:
            lines += ["", "### Imbalance with the paper's training-set size", ""] + paper
    lines += ["", "## Figures", ""]
    for name, text in (("noise_rate", f"Accuracy against the BackgroundFlip rate on "
                        f"{cfg.sweep_dataset}, {cfg.sweep_clean} clean rows per class"),
                       ("imbalance", "Test error on the balanced 4/9 test set against "
                        "the majority proportion (as in the paper's figure)"),
                       ("collapse", "L2RW with SGD in the collapse study: clean-set loss "
                        "and weight_ess per epoch")):
        figure = f"{report_name(cfg)}_{name}.png"
        if (info["out_dir"] / figure).exists() or info.get("charts"):
            lines += [f"![{text}]({figure})", "", f"*{text}.*", ""]
    lines += ["## L2RW's weights", "", "Means over seeds at the last epoch. "
              "weight_ess: effective sample size of a batch's weights as a share of the "
              "batch; weight_zero_frac: share of rows with weight 0; weight ratio: mean "
              "weight of the flipped rows (noise) or of the minority rows (imbalance) "
              "over that of the other rows (< 1: down-weighted); collapse warning: fits "
              "in which the estimator warned (pointing to 'When weights collapse'; since "
              "the low-weight_ess warning was removed, only a clean loss 10x above its "
              "best does).", ""]
    lines += diagnostics_table(res, cfg)
    if cfg.collapse_kinds:
        lines += ["", "## Study: when the weights collapse (SGD)", ""] + collapse_text(cfg)
        lines += collapse_tables(res, cfg)
        grad = gradnorm_table(res, cfg)
        if grad:
            lines += ["", "#### Why: the weighted gradient is longer", ""] + grad
        if cfg.mode == "full":
            lines += ["", "### What it shows", "",
                      findings_pointer("When the weights collapse")]
    lines += ["", "## Compute", "", "CPU seconds of each method, all fits together "
              "(one thread per process; the machine was shared, so these are rough):", ""]
    lines += time_table(res)
    return "\n".join(lines) + "\n"


def collapse_text(cfg):
    """The collapse study's setting, as the report describes it (one paragraph)."""
    return [" ".join([
        f"Data: {cfg.collapse_dataset} restricted to the classes "
        f"{', '.join(map(str, cfg.collapse_classes))} (a 6-class tabular set), "
        f"{cfg.collapse_clean} clean rows per class, 40% noise (BackgroundFlip to the "
        "first class; UniformFlip), seeds "
        f"{', '.join(map(str, cfg.collapse_seeds))}.",
        f"The same MLP, batch {cfg.batch_size}, {cfg.collapse_epochs} epochs, "
        "`torch.optim.SGD(momentum=0.9)` at lr in "
        f"{{{', '.join(f'{v:g}' for v in cfg.collapse_lrs)}}} for plain training and "
        "for L2RW (defaults otherwise; the clean batch is then the whole clean set of "
        f"{cfg.collapse_clean * len(cfg.collapse_classes)} rows).",
        "A user would keep the rate with the lowest clean-set loss for plain training; "
        "at that rate L2RW is also run with `clean_batch_size=16`, with 3 plain warm-up "
        "epochs (`fit` without a clean set, then `partial_fit(..., X_val=clean_X, "
        "y_val=clean_y)`), with both, and at a 5x smaller rate; and once with Adam at "
        "the benchmark's setting.",
        "*Collapsed*: one class predicted for more than half of the (balanced) test "
        "set, or training stopped on a non-finite loss, or the last epoch's clean loss "
        "is over 100x its best.",
        "*Largest row step multiplier*: batch size × the largest weight of the last "
        "epoch (1 for uniform weights): how much more a single row moves the "
        "parameters than under plain training. All numbers are means over seeds.",
    ])]


# The hand-written reading of a full run lives in prose, next to the user guide;
# the report holds only what this script computed.
FINDINGS_PAGE = "docs/findings/quality.md"


def findings_pointer(section):
    return (f"The reading of these numbers, in prose: `{FINDINGS_PAGE}`, *{section}* "
            "(edited by hand after a rerun).")


def machine_info(out_dir, charts):
    return {"machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.platform()}",
            "versions": versions_line("pandas", "cleanlab", "matplotlib", "joblib"),
            "out_dir": Path(out_dir), "charts": charts}


def run(cfg, out_dir=RESULTS, *, jobs=1, command=None, charts=True, raw=None,
        log=print):
    """Run every part of ``cfg`` and write ``quality.md``, its rows ``quality.json``
    (``quality_lenet.*`` for LeNet) and the figures to ``out_dir``; ``raw``: a path to
    write the rows to as well.

    Parameters
    ----------
    cfg : Config
    out_dir : path
    jobs : int
        Worker processes.
    command : str or None
        The command the report quotes (default: this process's, as
        ``python -m benchmarks.quality ...``).
    charts : bool
        Draw the figures (needs matplotlib).
    raw : path or None
    log : callable

    Returns
    -------
    pathlib.Path
        The report, ``<out_dir>/<report_name(cfg)>.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = StudyRun("quality", command=command)
    load_start = load_average()
    tasks = plan(cfg, log=log)
    log(f"{len(tasks)} tasks on {jobs} worker(s)")
    rows = execute(tasks, jobs=jobs, log=log)
    if charts:
        # Before the report: it links the figures that are in its folder.
        draw(rows, cfg, out_dir)
    info = machine_info(out_dir, charts)
    # The record (run_record) with quality's own fields: the configuration the
    # report is rendered with, the workers, and its machine and versions lines.
    meta = dict(config=dataclasses.asdict(cfg), jobs=jobs, load_start=load_start,
                machine=info["machine"], versions=info["versions"])
    # One line of JSON, as quality.json always was: indented, its thousands of rows
    # would be some 36,000 lines (a full run's), each one a line of every diff.
    saved, _ = study.finish(rows, lambda saved: report(saved, out_dir), out_dir,
                            meta=meta, name=report_name(cfg), indent=None)
    if raw:
        save_rows(raw, **saved, indent=None)
    return out_dir / f"{report_name(cfg)}.md"


def reported_config(res, cfg):
    """``cfg`` less the parts without rows in ``res`` (a run with --parts, or on
    LeNet): what the report shows, its sections and goals, follows it."""
    if not res.values(part="noise"):
        cfg = dataclasses.replace(cfg, datasets={})
    if not res.values(part="imbalance"):
        cfg = dataclasses.replace(cfg, imb_proportions=())
    return cfg


def draw(rows, cfg, folder):
    """Draw the figures of ``rows`` (run with ``cfg``) into ``folder``, named after
    the report (:func:`report_name`); returns the paths written."""
    res = Results(rows)
    cfg = reported_config(res, cfg)
    return render_charts(res, cfg, Path(folder), prefix=report_name(cfg))


def report(saved, folder):
    """The Markdown report of a run from what it saved, for the folder it is
    written into (a figure there is linked).

    Parameters
    ----------
    saved : dict
        ``rows`` and ``meta``: the run's record
        (:func:`benchmarks.environment.run_record`) with ``config``, ``jobs``,
        ``load_start`` and, for merged runs, ``merged``; its machine and versions
        are those reported.
    folder : path

    Returns
    -------
    str
    """
    meta, res = saved["meta"], Results(saved["rows"])
    cfg = reported_config(res, _config_from_dict(meta["config"]))
    return render_markdown(res, cfg, command=meta["command"],
                           started=datetime.datetime.fromisoformat(meta["started"]),
                           elapsed=meta["elapsed"], jobs=meta["jobs"],
                           load=(meta["load_start"], meta["load"]),
                           merged=meta.get("merged", ()),
                           info={**machine_info(folder, False),
                                 **{k: meta[k] for k in ("machine", "versions")
                                    if k in meta}})


def write(saved, out_dir, *, charts=True, save=False):
    """Write the report of ``saved`` (its figures first, with ``charts``) into
    ``out_dir`` through :func:`benchmarks.environment.write_report`; with ``save``,
    ``saved`` as JSON next to it, from which ``--render`` rebuilds it.

    Returns
    -------
    pathlib.Path
        The report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = _config_from_dict(saved["meta"]["config"])
    if charts:
        draw(saved["rows"], cfg, out_dir)
    return write_report(out_dir / f"{report_name(cfg)}.md", report(saved, out_dir),
                        dict(saved, indent=None) if save else None)


def merge(runs):
    """Several saved runs as one (``--render`` of several files): their rows; the
    first one's record, with the parts of all and, in ``merged``, each other run's
    command and wall time (and the runs merged into it before).

    Parameters
    ----------
    runs : list of dict
        What each run saved (``rows`` and ``meta``).

    Returns
    -------
    dict
        ``rows`` and ``meta``, as :func:`write` takes them.
    """
    metas = [saved["meta"] for saved in runs]
    parts = list(dict.fromkeys(p for m in metas for p in m["config"].get("parts", PARTS)))
    # A merged file keeps its merge: its parts and the runs merged into it.
    merged = list(metas[0].get("merged", ()))
    for m in metas[1:]:
        merged += [dict(command=m["command"], elapsed=m["elapsed"])] + m.get("merged", [])
    return {"rows": [row for saved in runs for row in saved["rows"]],
            "meta": dict(metas[0], merged=merged, config=dict(metas[0]["config"], parts=parts))}


def report_name(cfg):
    """File stem of the report and prefix of its figures: ``quality``, or
    ``quality_lenet`` for a run with the LeNet module."""
    return "quality" if cfg.module == "mlp" else f"quality_{cfg.module}"


def _config_from_dict(d):
    d = dict(d)
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    d["datasets"] = {k: tuple(v) for k, v in d["datasets"].items()}
    return Config(**d)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="every part, small (< 5 min)")
    size.add_argument("--smoke", action="store_true",
                      help="digits only, ~20 s, nothing downloaded (CI)")
    size.add_argument("--render", metavar="JSON", nargs="+",
                      help="re-render the report from the rows a run wrote (quality.json, "
                           "quality_lenet.json or --raw files); several are merged (the "
                           "first one's configuration is used); the report, its figures and "
                           "the (merged) rows are written into --out")
    add_jobs_argument(parser)
    add_out_argument(parser)
    parser.add_argument("--raw", default=None,
                        help="also write the rows to this path (they are always written "
                             "next to the report, as quality.json or quality_lenet.json)")
    parser.add_argument("--no-charts", action="store_true", help="skip the figures")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated subset of the label-noise data sets "
                             "(default: all of the mode's; 'none' for none)")
    parser.add_argument("--module", choices=("mlp", "lenet"), default="mlp",
                        help="the net of every method: mlp (default, every data set) "
                             "or lenet (the paper's CNN: mnist, fashion_mnist and 4-vs-9 "
                             "only; writes quality_lenet.md)")
    parser.add_argument("--parts", default=None,
                        help="comma-separated subset of noise,imbalance,collapse,extras "
                             "(default: all)")
    args = parse_run_arguments(parser, argv, "quality")
    command = command_line("quality", argv)
    if args.render:
        saved = merge([load_rows(name) for name in args.render])
        name = report_name(_config_from_dict(saved["meta"]["config"]))
        # The rows next to the report, unless they are the one file rendered.
        target = Path(args.out) / f"{name}.json"
        save = len(args.render) > 1 or target.resolve() != Path(args.render[0]).resolve()
        path = write(saved, args.out, charts=not args.no_charts, save=save)
        print(f"wrote {path}")
        return 0
    cfg = smoke_config() if args.smoke else quick_config() if args.quick else full_config()
    if args.parts:
        cfg.parts = tuple(chosen_names(parser, args.parts, PARTS, "parts"))
    if args.datasets:
        names = ([] if args.datasets.strip() == "none" else
                 chosen_names(parser, args.datasets, cfg.datasets, "data sets for this mode"))
        cfg.datasets = {d: cfg.datasets[d] for d in names}
        if args.module == "lenet" and set(names) - set(IMAGE_SETS):
            parser.error(f"--module lenet takes 28x28 images: only {', '.join(IMAGE_SETS)}")
    if args.module != "mlp":
        use_module(cfg, args.module)
    jobs = worker_count(args)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    path = run(cfg, args.out, jobs=jobs, command=command, charts=not args.no_charts,
               raw=args.raw, log=lambda m: print(m, flush=True))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
