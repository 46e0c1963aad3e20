"""The speed study's three parts and its report (``benchmarks/speed.py`` says what
each part measures): time per training step, whole ``fit`` wall time and peak memory
of one step, interleaved, with the run's rows saved next to the report.

Two studies run it: ``benchmarks.speed`` (its command line, on the CPU or CUDA) and
``benchmarks.gpu_check`` (the quick configuration on the device, ``speed_cuda.md``),
so it lives in the common base rather than in either.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import gc
import math
import os
import platform
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.environment import RESULTS, StudyRun, cpu_model, load_average, load_rows
from benchmarks.report import markdown_table, median, paired_ratio
from benchmarks.common.timing import (BUSY_LIMIT, COMPILED, SMALL_CLEAN, SMALL_CLEAN_BATCH,
                                     Config, OtherLoad, StepCase, case_data, cpu_peak_bytes,
                                     fit_estimators, make_fit_data, quiet_repeats, rotated)
from benchmarks.models import mlp
from benchmarks.ports import PORTS, check_ports
from sk_l2rw.ghost import ghost_step
from sk_l2rw.meta_gradient import jvp_step, reference_step
from sk_l2rw.dispatch import choose_meta_gradient
from sk_l2rw.exceptions import FallbackWarning

VARIANTS = ("plain", "reference", "jvp", "ghost", "auto")
# Part 1 also times the ways people compute L2RW today (benchmarks/ports.py).
STEP_VARIANTS = VARIANTS + tuple(PORTS)
STEP_FUNCTIONS = {"reference": reference_step, "jvp": jvp_step, "ghost": ghost_step}


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _repeat_indices(wanted, busy, extra, deadline=None):
    """Repeat numbers: ``wanted`` of them, then up to ``extra`` more while fewer
    than ``wanted`` were quiet and ``time.monotonic()`` is before ``deadline``
    (``busy`` is filled in by the caller as it goes)."""
    r = 0
    while r < wanted or (r < wanted + extra
                         and sum(not b > BUSY_LIMIT for b in busy) < wanted
                         and (deadline is None or time.monotonic() < deadline)):
        yield r
        r += 1


def _repeats_note(busy, kept):
    shares = ", ".join(f"{b:.0%}" for b in busy)
    if len(kept) == len(busy):
        quiet = all(not b > BUSY_LIMIT for b in busy)
        return (f"All {len(busy)} repeats used (share of the machine used by other "
                f"processes, the largest over each repeat's timed pieces: {shares})"
                + ("." if quiet else "; **none was quiet: numbers are inflated**."))
    return (f"{len(kept)} of {len(busy)} repeats used: a repeat is left out when other "
            f"processes used more than {BUSY_LIMIT:.0%} of the machine during any of "
            f"its timed pieces (largest share per repeat: {shares}).")


def _log(message):
    print(message, flush=True)


def _case_cells(res):
    case = res["case"]
    return [case.label, f"{case.batch} / {case.clean_batch}"]


def make_step(variant, module, X, y, X_clean, y_clean, lr):
    """A closure doing one full training step (gradient + the same SGD step).

    Returns the closure and the name of the computation it runs ("auto" resolved).
    """
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    sample_loss = nn.CrossEntropyLoss(reduction="none")
    mean_loss = nn.CrossEntropyLoss()

    if variant == "plain":
        def step():
            optimizer.zero_grad(set_to_none=True)
            mean_loss(module(X), y).backward()
            optimizer.step()
        step.optimizer = optimizer
        return step, "plain"

    if variant in PORTS:
        name, fn = variant, PORTS[variant]
    else:
        name = choose_meta_gradient(module, "auto") if variant == "auto" else variant
        fn = STEP_FUNCTIONS[name]

    def step():
        optimizer.zero_grad(set_to_none=True)
        fn(module, sample_loss, X, y, X_clean, y_clean, lr=lr)
        optimizer.step()
    step.optimizer = optimizer
    return step, name


def _variant_steps(template, X, y, X_clean, y_clean, lr):
    """One step closure per variant, each on its own copy of ``template``.

    Returns the closures by variant and the computation "auto" resolved to.
    """
    steps, picks = {}, None
    for v in STEP_VARIANTS:
        module = copy.deepcopy(template).train()
        steps[v], name = make_step(v, module, X, y, X_clean, y_clean, lr)
        if v == "auto":
            picks = name
    return steps, picks


# ---------------------------------------------------------------------------
# Part 1: time per step
# ---------------------------------------------------------------------------


def bench_steps(cfg, device, log=None):
    """Median ms per step for every case and variant.

    Returns
    -------
    list of dict
        One per case: ``case``, ``auto_picks``, ``ms`` (variant -> list of ms/step,
        one per repeat), ``steps_per_block``.
    """
    log = log or _log
    results = []
    for ci, case in enumerate(cfg.step_cases):
        torch.manual_seed(ci)
        template = case.build().to(device)
        X, y, Xc, yc = case_data(case, device, seed=ci)
        # Every port must give the reference's weights before it is timed.
        port_diff = check_ports(template, nn.CrossEntropyLoss(reduction="none"), X, y,
                                Xc, yc, lr=cfg.lr)
        steps, picks = _variant_steps(template, X, y, Xc, yc, cfg.lr)
        # Warm-up, then size the blocks so that each lasts about step_block_s.
        per_block = {}
        for v in STEP_VARIANTS:
            for _ in range(cfg.step_warmup):
                steps[v]()
            _sync(device)
            t0 = time.perf_counter()
            k = max(3, cfg.step_warmup)
            for _ in range(k):
                steps[v]()
            _sync(device)
            dt = (time.perf_counter() - t0) / k
            per_block[v] = max(2, min(2000, int(cfg.step_block_s / max(dt, 1e-6))))
        results.append({"case": case, "auto_picks": picks, "steps": steps,
                        "ms": {v: [] for v in STEP_VARIANTS}, "steps_per_block": per_block,
                        "port_diff": port_diff})
    busy = []
    deadline = time.monotonic() + cfg.step_extra_until_s
    for r in _repeat_indices(cfg.step_repeats, busy, extra=cfg.step_repeats // 3,
                             deadline=deadline):
        shares = []
        for ci, res in enumerate(results):
            for v in rotated(STEP_VARIANTS, r + ci):
                meter = OtherLoad()
                fn, n = res["steps"][v], res["steps_per_block"][v]
                # A block stops early when the machine gets much slower than at
                # calibration (another process), so that a run stays bounded.
                limit = 5 * cfg.step_block_s
                done = 0
                _sync(device)
                t0 = time.perf_counter()
                while done < n:
                    fn()
                    done += 1
                    if done >= 2 and time.perf_counter() - t0 > limit:
                        break
                _sync(device)
                res["ms"][v].append((time.perf_counter() - t0) / done * 1e3)
                shares.append(meter.share())
        # The busiest block decides: a repeat is fair only if no variant was hit.
        busy.append(max(shares))
        log(f"  steps: repeat {r + 1}/{cfg.step_repeats}{'+' if r >= cfg.step_repeats else ''} done "
            f"(other processes {busy[-1]:.0%})")
    keep = quiet_repeats(busy)
    for res in results:
        del res["steps"]  # free the modules
        res["ms_all"] = res["ms"]
        res["ms"] = {v: [ms[i] for i in keep] for v, ms in res["ms_all"].items()}
        res["busy"], res["kept"] = busy, keep
    return results


# ---------------------------------------------------------------------------
# Part 2: whole fit
# ---------------------------------------------------------------------------


def bench_fit(cfg, device, log=None):
    """Seconds per fit for each estimator (:func:`fit_estimators`), interleaved.

    Returns
    -------
    dict
        ``s`` (estimator -> list of seconds), ``meta_gradient`` (what L2RW ran),
        ``rows``, ``clean_rows``.
    """
    log = log or _log
    X, y, Xc, yc = make_fit_data(cfg)
    makers = fit_estimators(cfg, device)
    out = {"s": {k: [] for k in makers}, "meta_gradient": None,
           "rows": len(y), "clean_rows": len(yc)}
    # Untimed warm-up of each (first-call costs of torch, skorch and the DataLoader;
    # the compiled step's graphs: the warm-up's last batch has the fit's last size).
    warm = slice(0, min(len(y), 20 * cfg.fit_batch))
    warm_up = slice(0, min(len(y), 20 * cfg.fit_batch + len(y) % cfg.fit_batch))
    for name, make in makers.items():
        est = make().set_params(max_epochs=1)
        if name != "NeuralNetClassifier":
            est.fit(X[warm_up], y[warm_up], X_val=Xc, y_val=yc)
        else:
            est.fit(X[warm], y[warm])
    busy = []
    deadline = time.monotonic() + cfg.fit_extra_until_s
    for r in _repeat_indices(cfg.fit_repeats, busy, extra=cfg.fit_repeats,
                             deadline=deadline):
        shares = []
        for name in rotated(list(makers), r):
            meter = OtherLoad()
            est = makers[name]()
            torch.manual_seed(r)
            gc.collect()
            _sync(device)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FallbackWarning)
                if name != "NeuralNetClassifier":
                    est.fit(X, y, X_val=Xc, y_val=yc)
                else:
                    est.fit(X, y)
            _sync(device)
            out["s"][name].append(time.perf_counter() - t0)
            if name == COMPILED:
                out["compiled_fallbacks"] = sorted(
                    {str(w.message) for w in caught if w.category is FallbackWarning}
                    | set(out.get("compiled_fallbacks", ())))
            shares.append(meter.share())
            if name == "L2RWClassifier":
                out["meta_gradient"] = est.meta_gradient_
        busy.append(max(shares))
        log(f"  fit: repeat {r + 1}/{cfg.fit_repeats}{'+' if r >= cfg.fit_repeats else ''} done "
            f"(other processes {busy[-1]:.0%})")
    keep = quiet_repeats(busy)
    out["s_all"] = out["s"]
    out["s"] = {k: [s[i] for i in keep] for k, s in out["s_all"].items()}
    out["busy"], out["kept"] = busy, keep
    # Counted eagerly (a compiled graph's operations do not pass a dispatch mode), for
    # plain training and L2RW's defaults.
    eager = {k: makers[k] for k in ("NeuralNetClassifier", "L2RWClassifier")}
    out["ops_per_step"] = ops_per_step(eager, X[warm], y[warm], Xc, yc, cfg.fit_batch)
    return out


class CountOps(TorchDispatchMode):
    """Counts the tensor (aten) operations run inside it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(makers, X, y, Xc, yc, batch):
    """Tensor operations per step of each estimator's one-epoch ``fit`` on ``X``
    (everything its fit runs, divided by its steps): a count that, unlike time,
    this machine's noise cannot move."""
    out = {}
    for name, make in makers.items():
        est = make().set_params(max_epochs=1)
        with CountOps() as mode:
            if name == "L2RWClassifier":
                est.fit(X, y, X_val=Xc, y_val=yc)
            else:
                est.fit(X, y)
        out[name] = mode.count / math.ceil(len(y) / batch)
    return out


# ---------------------------------------------------------------------------
# Part 3: peak memory of one step
# ---------------------------------------------------------------------------


def cuda_peak_bytes(fn, device):
    """Peak of CUDA memory allocated by ``fn()`` beyond what was allocated before."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base,
            torch.cuda.memory_allocated(device) - base)


def calibrate_cpu_peak():
    """Known answer for :func:`cpu_peak_bytes`: 8 MB, free, 4 MB -> peak 8 MB."""
    def fn():
        a = torch.empty(8_000_000, dtype=torch.uint8)
        del a
        b = torch.empty(4_000_000, dtype=torch.uint8)
        del b
    return cpu_peak_bytes(fn)[0]


def bench_memory(cfg, device, log=None):
    """Peak bytes of one full training step per variant.

    Returns
    -------
    dict
        ``peak`` (variant -> list of bytes), ``baseline`` (bytes of parameters and
        data), ``n_params``, ``auto_picks``, ``method``, ``calibration``.
    """
    log = log or _log
    torch.manual_seed(0)
    template = mlp(cfg.mem_sizes).to(device)
    case = StepCase("mem", "mlp", cfg.mem_batch, cfg.mem_clean_batch,
                    sizes=tuple(cfg.mem_sizes), n_classes=cfg.mem_sizes[-1])
    X, y, Xc, yc = case_data(case, device, seed=99)
    steps, picks = _variant_steps(template, X, y, Xc, yc, cfg.lr)
    for step in steps.values():
        step()  # warm-up (lazy initialisation happens outside the measurement)
    cuda = torch.device(device).type == "cuda"
    out = {"peak": {v: [] for v in VARIANTS}, "end": {v: [] for v in VARIANTS},
           "n_params": n_parameters(template), "auto_picks": picks,
           "baseline": (n_parameters(template) * 4
                        + sum(t.numel() * t.element_size() for t in (X, y, Xc, yc))),
           "method": ("torch.cuda.max_memory_allocated" if cuda
                      else "torch.profiler [memory] events, running peak"),
           "calibration": None if cuda else calibrate_cpu_peak()}
    for r in range(cfg.mem_repeats):
        for v in rotated(VARIANTS, r):
            # The step starts with no gradients, so the parameters' gradients
            # count as part of the step (freed here, before the measurement, so
            # that no block allocated before it is freed inside it).
            steps[v].optimizer.zero_grad(set_to_none=True)
            gc.collect()
            peak, end = (cuda_peak_bytes(steps[v], device) if cuda
                         else cpu_peak_bytes(steps[v]))
            out["peak"][v].append(peak)
            out["end"][v].append(end)
    log("  memory done")
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def machine_info(device):
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "platform": platform.platform()}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def evaluate_bars(steps, fit, mem):
    """The issue's bars: list of (bar, measured, threshold, passed)."""
    bars = []
    for res in steps:
        case = res["case"]
        ratio = paired_ratio(res["ms"]["auto"], res["ms"]["plain"])
        if case.model == "mlp" and case.clean_batch <= 32:
            bars.append((f"auto/plain per step, {case.label}, clean batch "
                         f"{case.clean_batch}", f"{ratio:.2f}x", "<= 1.6x", ratio <= 1.6))
        elif case.model == "mlp":
            bars.append((f"auto/plain per step, {case.label}, clean batch "
                         f"{case.clean_batch}", f"{ratio:.2f}x", "<= 2.0x", ratio <= 2.0))
    for res in steps:
        case = res["case"]
        # The goal: >= 3x on the MLP at clean batch 32, >= 2x on LeNet.
        goal = 3.0 if case.model == "mlp" else 2.0
        if case.model == "lenet" or case.clean_batch <= 32:
            for port in ("higher port", "functional-copy port"):
                speedup = paired_ratio(res["ms"][port], res["ms"]["auto"])
                bars.append((f"auto vs {port}, {case.label}, batch {case.batch}/clean "
                             f"{case.clean_batch}", f"{speedup:.2f}x", f">= {goal:g}x",
                             speedup >= goal))
    for res in steps:
        case = res["case"]
        speedup = paired_ratio(res["ms"]["reference"], res["ms"]["auto"])
        bars.append((f"auto vs reference speedup, {case.label}, batch {case.batch}/"
                     f"clean {case.clean_batch}", f"{speedup:.2f}x", ">= 2x",
                     speedup >= 2.0))
    if fit is not None:
        r = paired_ratio(fit["s"]["L2RWClassifier"], fit["s"]["NeuralNetClassifier"])
        # Issue "Robust training at plain training's price": 1.1x, stretch 1.0x.
        bars.append(("L2RWClassifier.fit / NeuralNetClassifier.fit", f"{r:.2f}x",
                     "<= 1.1x", r <= 1.1))
        bars.append(("L2RWClassifier.fit / NeuralNetClassifier.fit (stretch)",
                     f"{r:.2f}x", "<= 1.0x", r <= 1.0))
        if COMPILED in fit["s"]:
            r = paired_ratio(fit["s"][COMPILED], fit["s"]["NeuralNetClassifier"])
            bars.append((f"{COMPILED}.fit / NeuralNetClassifier.fit", f"{r:.2f}x",
                         "<= 1.1x", r <= 1.1))
    if mem is not None:
        r = median(mem["peak"]["auto"]) / median(mem["peak"]["plain"])
        bars.append(("auto/plain peak step memory", f"{r:.2f}x", "<= 1.5x", r <= 1.5))
    return bars


def _fmt_ms(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _fmt_mib(nbytes):
    mib = nbytes / 2**20
    return f"{mib:.2f}" if mib >= 1 else f"{mib:.3g}"


def render_markdown(info, steps, fit, mem, cfg, command, started, elapsed, load):
    L = []
    L.append("# sk_l2rw speed and memory benchmark\n")
    L.append(f"Command: `{command}`  ")
    L.append(f"Date: {started}  ")
    L.append(f"Wall time of the whole run: {elapsed:.0f} s  ")
    L.append(f"Device: {info['device']}"
             + (f" ({info['gpu']})" if "gpu" in info else ""))
    L.append("")
    L.append(f"Machine: {info['cpu']}, {info['cores']} cores, torch threads "
             f"{info['threads']} (torch.get_num_threads(), machine default, unchanged); "
             f"{info['platform']}  ")
    L.append(f"Load average at start / end: {load[0]} / {load[1]}  ")
    if info.get("other_load"):
        shares = ", ".join(f"part {k}: {v:.1%}" for k, v in info["other_load"].items())
        busy = any(v > 0.05 for v in info["other_load"].values())
        L.append(f"CPU time used by other processes while timing (share of all cores; "
                 f"/proc/stat minus this process): {shares}"
                 + (" -- the machine was busy at times; busy repeats are left out "
                    "(below)" if busy else " (quiet)") + "  ")
    L.append(f"Versions: {info['versions']}")
    L.append("")
    L.append("Every part is interleaved: inside each repeat the variants run "
             "round-robin (the first one rotating between repeats), so noise from "
             "the machine hits all of them alike. Times are medians over the "
             "repeats; the spread column is min-max over the repeats. Ratios are "
             "medians over the repeats of the ratio within each repeat (paired), "
             "so a slow spell of the machine cancels out.")
    L.append("")

    # Part 1
    if steps:
        L.append("## 1. Time per training step (compute only)\n")
        L.append(f"Pre-made tensors on the device, no skorch loop. Every variant is "
                 f"`zero_grad(set_to_none=True)`, the gradient computation, then the same "
                 f"`torch.optim.SGD(lr={cfg.lr})` step. Plain: forward, mean "
                 f"CrossEntropyLoss, backward. L2RW variants: the step function of "
                 f"`sk_l2rw` with `CrossEntropyLoss(reduction='none')`. "
                 f"{cfg.step_warmup} warm-up steps per variant, then "
                 f"{cfg.step_repeats} repeats (up to {cfg.step_repeats // 3} more "
                 f"while some were busy, begun in the part's first "
                 f"{cfg.step_extra_until_s:g} s) of a block of about "
                 f"{cfg.step_block_s:g} s per variant.\n")
        L.append(_repeats_note(steps[0]["busy"], steps[0]["kept"]) + "\n")
        body = []
        for res in steps:
            for var in STEP_VARIANTS:
                ms = res["ms"][var]
                name = f"auto (= {res['auto_picks']})" if var == "auto" else var
                body.append([*_case_cells(res), name, _fmt_ms(median(ms)),
                             f"{_fmt_ms(min(ms))}-{_fmt_ms(max(ms))}",
                             f"{paired_ratio(ms, res['ms']['plain']):.2f}"])
        L += markdown_table(["Model", "batch / clean batch", "Computation", "median ms/step",
                             "spread (ms)", "x plain"], body, align="lllrrr")
        L.append("")
        ref = "reference"
        speedups = [[*_case_cells(res), *(f"{paired_ratio(res['ms'][ref], res['ms'][v]):.2f}x"
                                          for v in ("auto", "jvp", "ghost"))]
                    for res in steps]
        L += markdown_table(["Model", "batch / clean batch", "auto vs reference speedup",
                             "jvp vs reference", "ghost vs reference"], speedups,
                            align="llrrr")
        L.append("")
        L.append("The ways people compute L2RW today (`benchmarks/ports.py`: the "
                 "`higher`-library loop of the public reproductions, a fresh "
                 "functional copy of the net per step, torch.func per-sample "
                 "gradients dotted with the clean gradient), each checked to give "
                 "the reference's weights and gradients on the case's batch before "
                 "it was timed (largest weight difference in brackets):\n")
        ports = [[*_case_cells(res), *(f"{paired_ratio(res['ms'][p], res['ms']['auto']):.2f}x "
                                       f"({res['port_diff'][p]:.0e})" for p in PORTS)]
                 for res in steps]
        L += markdown_table(["Model", "batch / clean batch", *(f"auto vs {p}" for p in PORTS)],
                            ports, align="ll" + "r" * len(PORTS))
        L.append("")
        counts = {res["case"].label: n_parameters(res["case"].build()) for res in steps}
        params = ", ".join(f"{label}: {n:,}" for label, n in counts.items())
        L.append(f"Parameters: {params}.\n")

    # Part 2
    if fit:
        L.append("## 2. Whole `fit` wall time\n")
        small = (f"; {SMALL_CLEAN}: the same with a clean batch of {SMALL_CLEAN_BATCH} "
                 "rows (the bars judge the default)" if SMALL_CLEAN in fit["s"] else "")
        L.append(f"{fit['rows']:,} x {cfg.fit_features} generated float32 rows "
                 f"(`make_classification`, {cfg.fit_classes} classes), "
                 f"{cfg.fit_epochs} epochs, batch {cfg.fit_batch}, MLP "
                 f"{cfg.fit_features}-{'-'.join(map(str, cfg.fit_hidden))}-"
                 f"{cfg.fit_classes} (logits), CrossEntropyLoss, SGD lr={cfg.fit_lr}, "
                 f"train_split=None, iterator_train__shuffle=True, verbose=0. "
                 f"NeuralNetClassifier uses skorch's default data path (DataLoader over "
                 f"its Dataset). L2RWClassifier: meta_gradient='auto' (ran "
                 f"`{fit['meta_gradient']}`), clean set of {fit['clean_rows']} rows "
                 f"({cfg.fit_clean_per_class} per class), clean_batch_size default "
                 f"(= batch_size){small}. {cfg.fit_repeats} interleaved repeat(s) (up to "
                 f"{cfg.fit_repeats} more while some were busy, begun in the part's "
                 f"first {cfg.fit_extra_until_s:g} s), after one untimed warm-up fit "
                 f"of each on {20 * cfg.fit_batch:,} rows.\n")
        L.append(_repeats_note(fit["busy"], fit["kept"]) + "\n")
        base = fit["s"]["NeuralNetClassifier"]
        ops = fit.get("ops_per_step")
        L += markdown_table(
            ["Estimator", "median s/fit", "repeats used (s)", "x NeuralNetClassifier"],
            [[name, f"{median(s):.2f}", ", ".join(f"{x:.2f}" for x in s),
              f"{paired_ratio(s, base):.2f}"] for name, s in fit["s"].items()],
            align="lrlr")
        L.append("")
        if "compiled_fallbacks" in fit:
            L.append(f"{COMPILED}: the step's graphs are built in the warm-up; fallback "
                     "warnings in the timed fits: "
                     + ("; ".join(fit["compiled_fallbacks"]) or "none") + ".\n")
        if ops:
            plain_ops = ops["NeuralNetClassifier"]
            L.append("Tensor (aten) operations per step, everything a one-epoch `fit` on "
                     f"the warm-up's {20 * cfg.fit_batch:,} rows runs divided by its "
                     "steps (counted with a `TorchDispatchMode`; a count this machine's "
                     "noise cannot move): "
                     + ", ".join(f"{n} {v:.1f} ({v / plain_ops:.2f}x)"
                                 for n, v in ops.items()) + ".\n")

    # Part 3
    if mem:
        L.append("## 3. Peak memory of one training step\n")
        sizes = "-".join(map(str, cfg.mem_sizes))
        L.append(f"MLP {sizes} ({mem['n_params']:,} parameters), batch {cfg.mem_batch}, "
                 f"clean batch {cfg.mem_clean_batch}. One full step (zero_grad with "
                 f"set_to_none, gradient computation, SGD step) after one warm-up step. "
                 f"Reported: peak bytes allocated beyond what was live when the step "
                 f"began (the model+data baseline, {mem['baseline'] / 2**20:.2f} MiB of "
                 f"parameters and batch tensors); the parameter gradients made during "
                 f"the step count.\n")
        if mem["calibration"] is not None:
            L.append("Method (CPU): `torch.profiler.profile(profile_memory=True)` records "
                     "every allocation and free of torch's CPU allocator as a `[memory]` "
                     "event with a signed byte count and a timestamp; the running sum of "
                     "those over the timeline is the memory allocated beyond the start, "
                     "and its maximum is the peak. This sees exactly torch's tensors "
                     "(tracemalloc does not see them at all; process RSS also depends "
                     "on what glibc malloc keeps cached or returns, so it is not used). "
                     "Self-check: allocate 8,000,000 B, free, allocate 4,000,000 B -> "
                     f"measured peak {mem['calibration']:,} B.\n")
        else:
            L.append("Method (CUDA): `torch.cuda.reset_peak_memory_stats` before the "
                     "step, `max_memory_allocated - memory_allocated(before)` after.\n")
        plain = median(mem["peak"]["plain"])
        peaks = []
        for var in VARIANTS:
            p = median(mem["peak"][var])
            name = f"auto (= {mem['auto_picks']})" if var == "auto" else var
            peaks.append([name, _fmt_mib(p), f"{int(p):,}", f"{p / plain:.2f}"])
        L += markdown_table(["Computation", "peak beyond baseline (MiB)", "bytes", "x plain"],
                            peaks)
        L.append("")

    bars = evaluate_bars(steps or [], fit, mem)
    if bars:
        L.append("## Bars\n")
        L += markdown_table(["Bar", "measured", "threshold", "result"],
                            [[bar, measured, threshold, "PASS" if ok else "FAIL"]
                             for bar, measured, threshold, ok in bars], align="lrrl")
        L.append("")
    return "\n".join(L) + "\n"


def render_chart(path, steps, fit, mem, title):
    """Bar chart of the ratios to plain; returns False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: chart skipped "
              "(pip install matplotlib to get it)")
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5),
                             gridspec_kw={"width_ratios": [3, 1, 1.6]})
    ax = axes[0]
    width = 0.8 / len(VARIANTS)
    for i, var in enumerate(VARIANTS):
        vals = [paired_ratio(r["ms"][var], r["ms"]["plain"]) for r in steps]
        xs = [j + (i - (len(VARIANTS) - 1) / 2) * width for j in range(len(steps))]
        ax.bar(xs, vals, width, label=var)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([f"{r['case'].label}\n{r['case'].batch}/clean "
                        f"{r['case'].clean_batch}" for r in steps], fontsize=8)
    ax.set_ylabel("time per step / plain")
    ax.set_title("1. time per step")
    ax.axhline(1, color="k", lw=0.5)
    for level, text in ((1.6, "bar 1.6x (MLP, clean 32)"), (2.0, "bar 2.0x (MLP, clean 128)")):
        ax.axhline(level, color="gray", lw=0.8, ls="--")
        ax.text(len(steps) - 0.55, level, text, fontsize=7, va="bottom", ha="right")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    if fit:
        names = list(fit["s"])
        ax.bar(range(len(names)), [median(fit["s"][n]) for n in names],
               color=["C0", "C4", "C2"][:len(names)])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("Classifier", "\nClassifier") for n in names],
                           fontsize=8)
        ax.set_ylabel("seconds per fit")
        bar = 1.1 * median(fit["s"]["NeuralNetClassifier"])
        ax.axhline(bar, color="gray", lw=0.8, ls="--")
        ax.text(len(names) - 0.55, bar, "bar 1.1x", fontsize=7, va="bottom", ha="right")
    ax.set_title("2. whole fit")
    ax = axes[2]
    if mem:
        plain = median(mem["peak"]["plain"])
        ax.bar(range(len(VARIANTS)), [median(mem["peak"][v]) / plain for v in VARIANTS],
               color=[f"C{i}" for i in range(len(VARIANTS))])
        ax.set_xticks(range(len(VARIANTS)))
        ax.set_xticklabels(VARIANTS, fontsize=8)
        ax.axhline(1, color="k", lw=0.5)
        ax.set_ylabel("peak step memory / plain")
        ax.axhline(1.5, color="gray", lw=0.8, ls="--")
        ax.text(len(VARIANTS) - 0.55, 1.5, "bar 1.5x", fontsize=7, va="bottom",
                ha="right")
    ax.set_title("3. peak memory")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def report_name(device):
    """File stem of a run's report, rows and chart: ``speed``, or ``speed_cuda`` for
    a run on a CUDA device (both kept in ``results/``)."""
    return "speed_cuda" if torch.device(device).type == "cuda" else "speed"


def _revived(saved):
    """The step cases and the configuration of ``saved`` as :class:`StepCase` and
    :class:`Config` (JSON keeps them as dicts), for the report's attribute reads."""
    cfg = saved["config"]
    if isinstance(cfg, dict):
        cfg = Config(**{**cfg, "step_cases": [StepCase(**c) for c in cfg["step_cases"]]})
    steps = saved["rows"]["steps"]
    if steps:
        steps = [r if isinstance(r["case"], StepCase) else {**r, "case": StepCase(**r["case"])}
                 for r in steps]
    return cfg, steps


def render(saved):
    """The Markdown report of a run, from what it saved (:func:`run`; the JSON next
    to the report, ``benchmarks.environment.load_rows`` or :func:`load_run`).

    Parameters
    ----------
    saved : dict
        ``rows`` (the parts: ``steps``, ``fit``, ``mem``; a part not run is None),
        ``config`` (:class:`Config`, or as a dict), ``info`` (the device and what the
        run saw of the machine) and ``meta`` (the run's record,
        :func:`benchmarks.environment.run_record`, with ``load_start``).

    Returns
    -------
    str
    """
    cfg, steps = _revived(saved)
    meta, rows = saved["meta"], saved["rows"]
    # The record keeps the CPU model and versions that the report's machine lines
    # give (run_record reads them as machine_info did: cpu_model, versions_line).
    info = {**saved["info"], "cpu": meta["machine"], "versions": meta["versions"]}
    started = datetime.datetime.fromisoformat(meta["started"])
    return render_markdown(info, steps, rows["fit"], rows["mem"], cfg, meta["command"],
                           f"{started:%Y-%m-%d %H:%M} UTC", meta["elapsed"],
                           (meta["load_start"], meta["load"]))


def load_run(path):
    """What a run saved (:func:`run`, ``<name>.json``), with the step cases and the
    configuration as objects (:class:`StepCase`, :class:`Config`).

    Returns
    -------
    dict
        ``rows``, ``config``, ``info`` and ``meta``, as :func:`render` takes them.
    """
    saved = load_rows(path)
    cfg, steps = _revived(saved)
    return {**saved, "config": cfg, "rows": {**saved["rows"], "steps": steps}}


def write_chart(saved, folder, log=None):
    """Draw the run's chart, ``<name>.png`` (:func:`report_name`), into ``folder``
    when the run timed the steps; returns whether it was drawn (matplotlib
    installed). ``log`` is called with the line saying so (default: printed)."""
    _, steps = _revived(saved)
    if not steps:
        return False
    info, rows = saved["info"], saved["rows"]
    png = Path(folder) / f"{report_name(info['device'])}.png"
    drawn = render_chart(png, steps, rows["fit"], rows["mem"],
                         f"sk_l2rw speed, {info['device']}, {saved['meta']['machine']}, "
                         f"{info['threads']} threads")
    if drawn:
        (log or _log)(f"wrote {png}")
    return drawn


def measure(cfg, device="cpu", parts=("steps", "fit", "memory"), log=None):
    """Run the benchmark parts of ``cfg`` on ``device``.

    Parameters
    ----------
    cfg : Config
    device : "cpu" or "cuda"
    parts : iterable of {"steps", "fit", "memory"}
    log : callable or None
        Called with a line of progress (default: printed).

    Returns
    -------
    rows : dict
        The parts: ``steps`` (one dict per case, the case as a dict), ``fit`` and
        ``mem``; None for a part not run.
    meta : dict
        For the run's record: the load average before the parts (``load_start``).
    more : dict
        Beside the rows: ``config`` (``cfg`` as a dict) and ``info`` (device, cores,
        torch threads, platform, GPU name on CUDA, and the share of the machine
        other processes used during parts 1 and 2).
    """
    log = log or _log
    load_start = load_average()
    info = machine_info(device)
    # The record names the CPU model (run_record's machine): not kept twice.
    cpu = info.pop("cpu")
    info["device"] = device
    log(f"device {device}, torch threads {info['threads']}, cpu {cpu}")
    steps = fit = mem = None
    info["other_load"] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if "steps" in parts:
            log("part 1: time per step")
            meter = OtherLoad()
            steps = bench_steps(cfg, device, log)
            info["other_load"]["1. steps"] = meter.share()
        if "fit" in parts:
            log("part 2: whole fit")
            meter = OtherLoad()
            fit = bench_fit(cfg, device, log)
            info["other_load"]["2. fit"] = meter.share()
        if "memory" in parts:
            log("part 3: peak memory")
            mem = bench_memory(cfg, device, log)
    for part, share in info["other_load"].items():
        if share > 0.05:
            log(f"warning: other processes used {share:.0%} of the machine during "
                f"part {part}; busy repeats are left out of the medians")
    # As JSON keeps them: the step cases and the configuration as dicts.
    steps = steps and [{**r, "case": dataclasses.asdict(r["case"])} for r in steps]
    return (dict(steps=steps, fit=fit, mem=mem), dict(load_start=load_start),
            dict(config=dataclasses.asdict(cfg), info=info))


def run(cfg, out_dir=RESULTS, device="cpu", command=None, chart=True,
        parts=("steps", "fit", "memory"), log=None):
    """Run the benchmark parts and write the report, its rows and the chart, as
    ``benchmarks.speed`` does (for ``benchmarks.gpu_check`` and the tests).

    Parameters
    ----------
    cfg : Config
    out_dir : path
    device : "cpu" or "cuda"
    command : str or None
        Shown in the report; defaults to this process's command line, as
        ``python -m benchmarks.speed ...``.
    chart : bool
        Also write the PNG (needs matplotlib).
    parts : iterable of {"steps", "fit", "memory"}
    log : callable or None

    Returns
    -------
    path : pathlib.Path
        The markdown report, ``<out_dir>/<name>.md`` (:func:`report_name`).
    """
    log = log or _log
    study = StudyRun("speed", command=command)
    rows, meta, more = measure(cfg, device, parts, log)
    saved, _ = study.finish(rows, render, out_dir, meta=meta, name=report_name(device),
                            **more)
    path = Path(out_dir) / f"{report_name(device)}.md"
    log(f"wrote {path}")
    if chart:
        write_chart(saved, out_dir, log)
    return path
