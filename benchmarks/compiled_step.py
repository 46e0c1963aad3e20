"""Eager against compiled L2RW (``compile=True``), per step and per fit, one run.

1. **Per step**, on the speed benchmark's cases (MLP 54-256-256-7 at batch 128 with
   clean batch 32 and 128, LeNet at batch 64 with clean batch 64): plain training,
   the eager ghost step and the compiled one (:func:`sk_l2rw.ghost.compiled_ghost_step`,
   inductor), each followed by the same SGD step, interleaved round-robin over
   repeats. Before timing, the compiled step's weights and gradients are compared
   with the eager step's; a case whose compiled step fails or differs is reported
   with the reason and not timed.
2. **Per fit**, in the speed benchmark's fit setting (50,000 x 54 rows, 5 epochs,
   batch 128): ``L2RWClassifier`` eager against ``compile=True``. The first compiled
   fit includes building the graphs; the repeats after it (interleaved with eager
   fits) find them cached, as every later fit of a process does.

Writes ``compiled_step.json`` (the rows) and ``compiled_step.md`` into ``--out``;
``--render JSON`` rebuilds the Markdown from the rows.

Usage::

    python -m benchmarks.compiled_step [--smoke] [--repeats N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import gc
import time
import warnings

import torch
from torch import nn

from benchmarks.environment import add_report_arguments, report_header, study_command
from benchmarks.report import markdown_table, median, paired_ratio
from benchmarks.common.timing import (OtherLoad, case_data, fit_estimators, full_config,
                                     make_fit_data, quiet_repeats, rotated, smoke_config,
                                     timed_blocks)
from sk_l2rw.exceptions import FallbackWarning
from sk_l2rw.ghost import compiled_ghost_step, ghost_step

STEPS = ("plain", "eager", "compiled")
FITS = ("eager", "compiled")


def _step(variant, module, X, y, Xc, yc, lr, options):
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    sample_loss, mean_loss = nn.CrossEntropyLoss(reduction="none"), nn.CrossEntropyLoss()
    fn = compiled_ghost_step(options) if variant == "compiled" else ghost_step

    def step():
        optimizer.zero_grad(set_to_none=True)
        if variant == "plain":
            mean_loss(module(X), y).backward()
        else:
            fn(module, sample_loss, X, y, Xc, yc, lr=lr)
        optimizer.step()
    return step


def _difference(template, X, y, Xc, yc, lr, options):
    """Largest weight and gradient differences of one compiled step from the eager
    one, or the compiler's error as a string."""
    loss = nn.CrossEntropyLoss(reduction="none")
    out = {}
    for name, fn in (("eager", ghost_step), ("compiled", compiled_ghost_step(options))):
        module = copy.deepcopy(template)
        try:
            result = fn(module, loss, X, y, Xc, yc, lr=lr)
        except Exception as exc:  # torch.compile's errors have many types
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        out[name] = result.weights, [p.grad for p in module.parameters()]
    (w0, g0), (w1, g1) = out["eager"], out["compiled"]
    return {"weights": float((w0 - w1).abs().max()),
            "gradients": max(float((a - b).abs().max()) for a, b in zip(g0, g1))}


def bench_steps(cfg, repeats, block_s, options, log=print):
    rows = []
    for ci, case in enumerate(cfg.step_cases):
        torch.manual_seed(ci)
        template = case.build()
        X, y, Xc, yc = case_data(case, "cpu", seed=ci)
        row = {"case": f"{case.label}, batch {case.batch}, clean batch {case.clean_batch}"}
        t0 = time.perf_counter()
        row["difference"] = _difference(template, X, y, Xc, yc, cfg.lr, options)
        row["compile_s"] = time.perf_counter() - t0
        variants = STEPS if isinstance(row["difference"], dict) else STEPS[:2]
        fns = {v: _step(v, copy.deepcopy(template), X, y, Xc, yc, cfg.lr, options)
               for v in variants}
        row["ms"], row["busy"] = timed_blocks(fns, repeats, block_s, log, case.label)
        rows.append(row)
    return rows


def bench_fit(cfg, repeats, options, log=print):
    X, y, Xc, yc = make_fit_data(cfg)
    make = fit_estimators(cfg, "cpu")["L2RWClassifier"]

    def fit(variant, seed):
        # The same initial module and batches for both.
        est = make().set_params(compile=variant == "compiled", random_state=seed,
                                **{f"compile__{k}": v for k, v in options.items()})
        gc.collect()
        meter = OtherLoad()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FallbackWarning)
            est.fit(X, y, X_val=Xc, y_val=yc)
        seconds = time.perf_counter() - t0
        fallbacks = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
        return seconds, meter.share(), est, fallbacks

    first_s, _, first, fallbacks = fit("compiled", 0)
    eager_s, _, eager, _ = fit("eager", 0)
    out = {"rows": len(y), "first_compiled_s": first_s, "first_eager_s": eager_s,
           "fallbacks": fallbacks,
           "weight_difference": float(abs(first.sample_weights_ - eager.sample_weights_).max()),
           "s": {v: [] for v in FITS}, "busy": []}
    for r in range(repeats):
        shares = []
        for variant in rotated(FITS, r):
            seconds, share, _, _ = fit(variant, r)
            out["s"][variant].append(seconds)
            shares.append(share)
        out["busy"].append(max(shares))
        log(f"  fit: repeat {r + 1}/{repeats} (other processes {out['busy'][-1]:.0%})")
    return out


def run(cfg, *, repeats, fit_repeats, block_s, backend="inductor", log=print):
    """The rows of one run: ``steps`` (per case) and ``fit``; ``backend`` is
    torch.compile's (the tests take "aot_eager": the traced graph without inductor's
    C++ build)."""
    options = {} if backend == "inductor" else {"backend": backend}
    return {"backend": backend, "threads": torch.get_num_threads(),
            "steps": bench_steps(cfg, repeats, block_s, options, log),
            "fit": bench_fit(cfg, fit_repeats, options, log)}


def _kept(values, busy):
    keep = quiet_repeats(busy)
    return [values[i] for i in keep]


def step_cells(row):
    """The per-step table's cells of one step row: a step that does not compile is
    reported with the reason, not timed."""
    ms = {v: _kept(t, row["busy"]) for v, t in row["ms"].items()}
    diff = row["difference"]
    if isinstance(diff, dict):
        compiled = f"{median(ms['compiled']):.3f}"
        ratio = f"{paired_ratio(ms['compiled'], ms['eager']):.2f}x"
        diff = f"weights {diff['weights']:.1e}, gradients {diff['gradients']:.1e}"
    else:
        compiled, ratio, diff = "not timed", "-", f"does not compile: {diff}"
    return [row["case"], f"{median(ms['plain']):.3f}", f"{median(ms['eager']):.3f}",
            compiled, ratio, diff, f"{row['compile_s']:.1f}"]


def render(saved):
    """The Markdown report of a run: ``saved`` is what :func:`main` wrote as JSON
    (``meta``, the run's record, and ``rows``, :func:`run`'s)."""
    rows = saved["rows"]
    lines = report_header("sk_l2rw: eager against compiled L2RW step (compile=True)",
                          **saved["meta"])
    lines += [f"torch.compile backend: {rows['backend']}; torch threads {rows['threads']}.",
              ""]
    lines += ["## Per step (ms, median over quiet repeats; ratios paired per repeat)", ""]
    lines += markdown_table(["case", "plain", "eager ghost", "compiled ghost",
                             "compiled / eager", "compiled vs eager (max abs difference)",
                             "first call (s)"], [step_cells(row) for row in rows["steps"]],
                            align="lrrrrlr")
    fit = rows["fit"]
    s = {v: _kept(t, fit["busy"]) for v, t in fit["s"].items()}
    lines += ["", f"## Per fit ({fit['rows']:,} rows, L2RWClassifier, auto)", "",
              f"- First fit of the process: compiled {fit['first_compiled_s']:.1f} s "
              f"(includes building the graphs), eager {fit['first_eager_s']:.1f} s; largest "
              f"difference in the row weights {fit['weight_difference']:.1e}.",
              f"- Later fits (graphs cached), median over {len(s['eager'])} quiet repeats: "
              f"eager {median(s['eager']):.2f} s, compiled {median(s['compiled']):.2f} s, "
              f"compiled / eager {paired_ratio(s['compiled'], s['eager']):.2f}x.",
              "- Fallback warnings: " + ("; ".join(fit["fallbacks"]) or "none"), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "compiled_step.md", smoke="tiny sizes (CI)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--backend", default="inductor", help="torch.compile's backend")

    def measure(args):
        cfg = smoke_config() if args.smoke else full_config()
        repeats = args.repeats or (2 if args.smoke else 9)
        rows = run(cfg, repeats=repeats, fit_repeats=1 if args.smoke else 5,
                   block_s=0.002 if args.smoke else 0.3, backend=args.backend)
        return rows, dict(smoke=args.smoke)

    return study_command("compiled_step", parser, argv, render, measure, return_saved=True)


if __name__ == "__main__":
    main()
