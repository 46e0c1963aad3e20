"""The meta-gradient restricted to the last k layers: its cost per step and accuracy.

Some follow-ups of L2RW take the meta-gradient from the last layers' parameters
only, for speed. Issue 18 ships that as an opt-in ``meta_gradient`` value only if,
on the quality benchmark's label-noise cells, it keeps within 1 point of exact
L2RW's accuracy on average while costing at most 1.2x plain training per step on
LeNet. This study measures both, in one run:

1. **Per step**, on the speed benchmark's LeNet case (batch 64, clean batch 64):
   plain training, the exact ghost step, :func:`last_layers_step` for each k, and
   the *floor* of any last-k computation: a plain step plus one forward pass of the
   clean batch without gradients. The clean rows' inputs to the last layers exist
   only after the whole forward pass, so no last-k step can cost less than that;
   the floor is a lower bound, not an implementation. Every variant is followed by
   the same SGD step, interleaved round-robin over repeats (``compiled_step``'s
   timing).
2. **Accuracy**, on quality_lenet's label-noise cells (mnist and fashion_mnist,
   40% noise of each kind, 10 and 100 clean rows per class, seeds 0-4, LeNet and the
   quality benchmark's setting): exact L2RW (``meta_gradient="auto"``, quality's
   fit) and L2RW with the last-k meta-gradient on the same splits, paired per cell.

k counts the layers with trainable parameters from the output: on LeNet k=1 is
fc3, k=3 is the three fully connected layers (every convolution left out). Both
were fixed before any number was seen.

Writes ``last_layers.json`` (the rows) and ``last_layers.md`` into ``--out``;
``--render JSON`` rebuilds the Markdown from the rows.

Usage::

    python -m benchmarks.last_layers [--smoke] [--jobs N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import time
import warnings

import numpy as np
import torch
from torch import nn

from benchmarks.common import methods, protocol, runner
from benchmarks.environment import (add_jobs_argument, add_report_arguments, report_header,
                                    study_command, worker_count)
from benchmarks.report import markdown_table, mean_std, median, paired_ratio
from benchmarks.common.timing import (case_data, full_config, quiet_repeats, smoke_config,
                                     timed_blocks)
from sk_l2rw import dispatch
from sk_l2rw.ghost import ghost_step
from sk_l2rw.meta_gradient import StepResult, call_module

KS = (1, 3)  # fc3; fc1-fc3 (LeNet)
COST_BAR = 1.2  # x plain per step on LeNet
ACCURACY_BAR = 1.0  # points below exact L2RW, on average over the cells


def trainable_layers(module):
    """The submodules that hold trainable parameters of their own, in registration
    order (LeNet: conv1, conv2, fc1, fc2, fc3)."""
    return [m for m in module.modules()
            if any(p.requires_grad for p in m.parameters(recurse=False))]


def last_layers_step(module, loss_fn, X, y, X_clean, y_clean, *, k, lr=1.0,
                     forward_kwargs=None, clean_weights=None, clean_share=0.0, update=True,
                     normalize=None):
    """An L2RW step whose meta-gradients see only the last ``k`` trainable layers.

    ``u_i`` is the dot product of row i's gradient with the clean gradient over the
    parameters of the last ``k`` layers of :func:`trainable_layers` only (exact L2RW
    takes every parameter; ``k`` = all layers gives it). The update is the ordinary
    gradient of ``sum_i w_i f_i`` over every parameter. Arguments and return value
    as :func:`sk_l2rw.meta_gradient.reference_step`'s; training on the clean rows
    (``clean_share``) is not studied here.

    The meta-gradients come from the ghost step with the other layers' parameters
    frozen (so its backward pass stops at the k-th layer from the output), the
    update from a second forward and backward pass of the training rows.
    """
    if torch.is_tensor(clean_share) or clean_share:
        raise ValueError("last_layers_step does not train on the clean rows")
    layers = trainable_layers(module)
    if not 1 <= k <= len(layers):
        raise ValueError(f"k must be between 1 and {len(layers)}, got {k}")
    frozen = [p for layer in layers[:-k] for p in layer.parameters(recurse=False)
              if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        meta = ghost_step(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                          forward_kwargs=forward_kwargs, clean_weights=clean_weights,
                          update=False, normalize=normalize)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    if not update:
        return meta
    out = call_module(module, X, forward_kwargs=forward_kwargs)
    loss = (meta.weights * loss_fn(out, y)).sum()
    loss.backward()
    return StepResult(loss.detach(), out.detach(), meta.weights, meta.meta_gradients)


@contextlib.contextmanager
def meta_gradient_of_last(k):
    """Inside, ``meta_gradient="ghost"`` fits run :func:`last_layers_step` with ``k``
    (this process only): the study's way into the estimator for a computation that
    is not shipped."""
    saved = dispatch.STEPS["ghost"]
    dispatch.STEPS["ghost"] = functools.partial(last_layers_step, k=k)
    try:
        yield
    finally:
        dispatch.STEPS["ghost"] = saved


# ---------------------------------------------------------------------------
# Part 1: time per step
# ---------------------------------------------------------------------------


def _step(variant, module, X, y, Xc, yc, lr):
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    sample_loss, mean_loss = nn.CrossEntropyLoss(reduction="none"), nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        if variant in ("plain", "floor"):
            mean_loss(module(X), y).backward()
            if variant == "floor":
                with torch.no_grad():
                    module(Xc)
        elif variant == "exact":
            ghost_step(module, sample_loss, X, y, Xc, yc, lr=lr)
        else:
            last_layers_step(module, sample_loss, X, y, Xc, yc, k=int(variant[5:]), lr=lr)
        optimizer.step()
    return step


def step_variants(ks):
    return ("plain", "exact", *(f"last {k}" for k in ks), "floor")


def bench_steps(cfg, ks, repeats, block_s, log=print):
    """Rows of part 1: the LeNet case of ``cfg`` (the speed benchmark's)."""
    case = next(c for c in cfg.step_cases if c.model == "lenet")
    torch.manual_seed(0)
    template = case.build()
    X, y, Xc, yc = case_data(case, "cpu", seed=0)
    fns = {v: _step(v, copy.deepcopy(template), X, y, Xc, yc, cfg.lr)
           for v in step_variants(ks)}
    ms, busy = timed_blocks(fns, repeats, block_s, log, case.label)
    names = {m: name for name, m in template.named_modules()}
    return {"case": f"{case.label}, batch {case.batch}, clean batch {case.clean_batch}",
            "layers": [names[m] for m in trainable_layers(template)],
            "ms": ms, "busy": busy}


# ---------------------------------------------------------------------------
# Part 2: accuracy on the label-noise cells
# ---------------------------------------------------------------------------


def accuracy_task(cfg, name, seed, data, cells, ks, threads=1):
    """Exact and last-k L2RW on every cell of one data set and seed."""
    rows = []
    X, y, X_te, y_te = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    K = len(data["classes"])
    with runner.limited_threads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for clean, X_rest, X_clean, y_clean, noisy in protocol.noise_splits(X, y, cells, seed):
            for kind, rate, y_noisy, _ in noisy:
                for k in (None, *ks):
                    t0 = time.perf_counter()
                    with (contextlib.nullcontext() if k is None
                          else meta_gradient_of_last(k)):
                        net, _ = methods.fit_l2rw(cfg, X_rest, y_noisy, X_clean, y_clean, K, seed,
                                            meta_gradient="auto" if k is None else "ghost")
                    rows.append(dict(dataset=name, seed=seed, kind=kind, rate=rate,
                                     clean=clean, k=k, **methods.metrics(net, X_te, y_te),
                                     fit_s=round(time.perf_counter() - t0, 3)))
    return rows


def accuracy_config(smoke):
    """quality's full configuration on LeNet (quality_lenet's noise cells); the
    smoke one on its MLP (digits is 8x8)."""
    if smoke:
        return protocol.smoke_config()
    return protocol.use_module(protocol.full_config(), "lenet")


def bench_accuracy(cfg, ks, jobs, log=print):
    tasks = []
    cells = [(kind, cfg.rate, c) for kind in cfg.kinds for c in cfg.clean_sizes]
    for name, size in cfg.datasets.items():
        pool = protocol.load_pool(name)
        for seed in cfg.seeds:
            data = protocol.prepare(name, pool, size, seed)
            tasks.append((f"{name} seed {seed}", accuracy_task,
                          (cfg, name, seed, data, cells, ks)))
    return runner.execute(tasks, jobs=jobs, log=log)


def run(smoke, *, ks, repeats, block_s, jobs, log=print):
    """The rows of one run: ``steps`` (part 1) and ``accuracy`` (part 2)."""
    cfg = accuracy_config(smoke)
    return {"threads": torch.get_num_threads(), "ks": list(ks), "module": cfg.module,
            "steps": bench_steps(smoke_config() if smoke else full_config(), ks, repeats,
                                 block_s, log),
            "accuracy": bench_accuracy(cfg, ks, jobs, log)}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def cost_ratios(steps):
    """Each variant's time per step over plain's (paired per quiet repeat)."""
    keep = quiet_repeats(steps["busy"])
    ms = {v: [t[i] for i in keep] for v, t in steps["ms"].items()}
    return {v: paired_ratio(t, ms["plain"]) for v, t in ms.items()}, ms


def accuracies(rows, k):
    """Per cell (data set, kind, clean size): ``{seed: accuracy}`` of the fits with
    ``k`` (None: exact L2RW)."""
    cells = {}
    for r in rows:
        if r["k"] == k:
            cells.setdefault((r["dataset"], r["kind"], r["clean"]), {})[r["seed"]] = r["acc"]
    return cells


def accuracy_differences(rows, k):
    """Per cell (data set, kind, clean size): the last-k accuracy minus the exact
    one, in points, one value per seed."""
    exact = accuracies(rows, None)
    return {cell: [100 * (acc - exact[cell][seed]) for seed, acc in by_seed.items()]
            for cell, by_seed in accuracies(rows, k).items()}


def verdicts(rows):
    """For each k: its cost over plain, its mean accuracy difference over the cells,
    and whether it meets both bars."""
    ratios, _ = cost_ratios(rows["steps"])
    out = []
    for k in rows["ks"]:
        cells = accuracy_differences(rows["accuracy"], k)
        mean = float(np.mean([np.mean(v) for v in cells.values()]))
        cost = ratios[f"last {k}"]
        cost_ok, accuracy_ok = cost <= COST_BAR, mean >= -ACCURACY_BAR
        out.append(dict(k=k, cost=cost, accuracy=mean, cost_ok=cost_ok,
                        accuracy_ok=accuracy_ok, ship=cost_ok and accuracy_ok))
    return out


def render(saved):
    """The Markdown report of a run: ``saved`` is what :func:`main` wrote as JSON."""
    rows = saved["rows"]
    steps = rows["steps"]
    lines = report_header("sk_l2rw: the meta-gradient restricted to the last k layers",
                          **saved["meta"])
    layers = steps["layers"]
    names = {k: ", ".join(layers[-k:]) for k in rows["ks"]}
    cuts = "; ".join(f"k={k}: {v}" for k, v in names.items())
    lines += [f"torch threads {rows['threads']}. Trainable layers, input to output: "
              f"{', '.join(layers)}; the last k layers: {cuts}.",
              "", f"## 1. Time per step ({steps['case']})", ""]
    ratios, ms = cost_ratios(steps)
    labels = {"plain": "plain", "exact": "exact L2RW (ghost)",
              "floor": "floor: plain + clean forward (no gradients)",
              **{f"last {k}": f"last {k} ({names[k]})" for k in rows["ks"]}}
    lines += markdown_table(
        ["variant", "median ms/step", "x plain"],
        [[labels[v], f"{median(t):.3f}", f"{ratios[v]:.2f}"] for v, t in ms.items()],
        align="lrr")
    lines += ["", f"Medians over {len(ms['plain'])} quiet repeats; ratios paired per repeat. "
              "The last-k rows time this study's implementation (the ghost step with the "
              "other layers frozen, then a second forward and backward pass of the "
              "training rows); the floor bounds every implementation from below.",
              "", f"## 2. Accuracy, last-k minus exact L2RW ({rows['module']}, points; "
              "mean ± std over seeds)", ""]
    acc = rows["accuracy"]
    exact = accuracies(acc, None)
    diffs = {k: accuracy_differences(acc, k) for k in rows["ks"]}
    body = [[d, protocol.KIND_NAMES[kind], str(c),
             mean_std(list(exact[(d, kind, c)].values()), scale=100),
             *(mean_std(diffs[k][(d, kind, c)], signed=True) for k in rows["ks"])]
            for d, kind, c in sorted(exact)]
    lines += markdown_table(["data set", "noise (40%)", "clean/class", "exact L2RW acc",
                             *(f"last {k}" for k in rows["ks"])], body,
                            align="lllr" + "r" * len(rows["ks"]))
    lines += ["", "## Verdict", "",
              f"Ship an opt-in value only if the cost is at most {COST_BAR}x plain per "
              f"LeNet step and the accuracy at most {ACCURACY_BAR:g} point below exact "
              "L2RW on average over the cells.", ""]
    lines += markdown_table(
        ["k", "cost (x plain)", "mean accuracy difference (points)", "ship"],
        [[str(v["k"]), f"{v['cost']:.2f} {'✓' if v['cost_ok'] else '✗'}",
          f"{v['accuracy']:+.2f} {'✓' if v['accuracy_ok'] else '✗'}",
          "yes" if v["ship"] else "no"] for v in verdicts(rows)], align="lrrl")
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "last_layers.md", smoke="digits and a tiny LeNet (CI)")
    add_jobs_argument(parser)
    parser.add_argument("--repeats", type=int, default=None)

    def measure(args):
        rows = run(args.smoke, ks=(1,) if args.smoke else KS,
                   repeats=args.repeats or (2 if args.smoke else 15),
                   block_s=0.002 if args.smoke else 0.3,
                   jobs=worker_count(args))
        return rows, dict(smoke=args.smoke)

    return study_command("last_layers", parser, argv, render, measure, return_saved=True)


if __name__ == "__main__":
    main()
