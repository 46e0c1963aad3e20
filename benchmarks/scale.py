"""Scale: fit time per epoch and peak memory as the number of rows grows.

One command measures, in the same run, plain skorch ``NeuralNetClassifier`` (its
default DataLoader route) and ``L2RWClassifier`` (auto) on generated float32 data of
10k, 100k and 1M rows x 50 features and on the KDD census set (its 200k training
rows, one-hot encoded). Time: both estimators in one process, epochs alternating
between them (``partial_fit``), so that a slow spell of the machine hits both;
the time ratio is the median of the ratios within each pair of epochs. Memory:
each estimator's fit in a fresh subprocess, the growth of its high-water resident
set size during ``fit`` (``VmHWM``, reset just before it).

    python -m benchmarks.scale [--sizes 10000 100000 1000000] [--no-kdd]
                               [--min-pairs 3] [--timed-rows 300000] [--device cpu]

Writes ``benchmarks/results/scale.md`` and its rows, ``scale.json`` (with the run's
metadata; ``--render scale.json`` rebuilds the report from them). Bars: the L2RW/plain
time ratio stays flat as n grows (cost linear in n) and L2RW's peak memory stays within
1.5x of plain.

The data-parallel part fits the same setting (50k generated rows) on 1 process and
on W processes (``torch.distributed``; gloo on CPU, nccl with ``--device cuda``,
one GPU per process), launched in turn, and reports the time per step against one
process, the scaling efficiency, what the step's two collectives cost and the
largest weight difference from one process::

    python -m benchmarks.scale --parallel 2 [--parallel-rows 50000] [--min-pairs 3]

It writes ``benchmarks/results/scale_parallel.md`` (``scale_parallel_cuda.md``) and
its rows, ``scale_parallel.json`` (``--render-parallel`` rebuilds the report).
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from benchmarks.report import markdown_table, median, paired_ratio
from benchmarks.environment import (StudyRun, add_out_argument, add_render_argument,
                                    cpu_model, load_rows, rerender, run_folder,
                                    versions_line)

N_FEATURES = 50
TIMED_ROWS = 300_000  # rows passed through in the timed epochs, at least


def _status_mib(field):
    """``VmRSS``/``VmHWM`` of this process from /proc/self/status, in MiB (or None)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Start a new high-water mark at the current RSS; returns that RSS in MiB.

    Loading and preprocessing the data (one-hot encoding KDD) can leave a peak
    above anything ``fit`` needs, which would hide the fit's own peak. Linux
    resets the mark on writing 5 to /proc/self/clear_refs; elsewhere the
    process's peak so far (``ru_maxrss``) is the baseline.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_mib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mib():
    peak = _status_mib("VmHWM")
    if peak is None:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def _data(name, seed=0):
    import numpy as np
    if name == "kdd_census":
        from benchmarks.datasets import kdd_census_preprocessor, load
        split = load("kdd_census")
        pre = kdd_census_preprocessor()
        X = pre.fit_transform(split.X_train).astype(np.float32)
        y = np.asarray(split.y_train)
        classes, y = np.unique(y, return_inverse=True)
        return np.ascontiguousarray(X), y.astype(np.int64)
    n = int(name)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES), dtype=np.float32)
    w = rng.standard_normal((N_FEATURES, 3)).astype(np.float32)
    y = (X @ w).argmax(1)
    return X, y


def _problem(name, device):
    """The data, and a maker of the plain or the L2RW estimator for it."""
    import numpy as np
    from skorch import NeuralNetClassifier
    from torch import nn

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.modules import MLP

    X, y = _data(name)
    rng = np.random.RandomState(1)
    clean = rng.choice(len(y), size=300, replace=False)
    mask = np.ones(len(y), bool)
    mask[clean] = False
    X_clean, y_clean = X[clean], y[clean]
    X_train, y_train = X[mask], y[mask]
    n_classes = int(y.max()) + 1
    # Plain training sees the clean rows as ordinary rows.
    X_all, y_all = np.concatenate([X_train, X_clean]), np.concatenate([y_train, y_clean])

    def make(estimator, max_epochs):
        common = dict(module=MLP, module__n_features=X.shape[1], module__n_outputs=n_classes,
                      module__hidden_layer_sizes=(256, 256), module__softmax=False,
                      criterion=nn.CrossEntropyLoss, lr=0.05,
                      max_epochs=max_epochs, batch_size=256, verbose=0, device=device)
        if estimator == "plain":
            net = NeuralNetClassifier(train_split=None, iterator_train__shuffle=True,
                                      **common)
            return net, X_all, y_all
        net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=0, **common)
        return net, X_train, y_train

    return X, make


def child_memory(name, estimator, device):
    """One two-epoch fit in this (fresh) process; prints a JSON line with its peak."""
    import torch

    X, make = _problem(name, device)
    net, X_fit, y_fit = make(estimator, 2)
    before = _reset_peak_rss()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    net.fit(X_fit, y_fit)
    result = {"name": name, "estimator": estimator, "rows": len(y_fit),
              "features": int(X.shape[1]), "peak_mib": _peak_rss_mib() - before,
              "data_mib": X.nbytes / 2 ** 20}
    if device.startswith("cuda"):
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if estimator == "l2rw":
        result["meta_gradient"] = net.meta_gradient_
    print(json.dumps(result))


def child_time(name, device, timed_rows=TIMED_ROWS, min_pairs=3):
    """Epochs of both estimators, interleaved in this process; prints a JSON line.

    Each estimator first trains one untimed epoch (start-up, lazy initialisation);
    then they alternate one epoch each (``partial_fit``), the first of each pair
    switching, so a slow spell of the machine hits both alike. A set of n rows gets
    ``max(min_pairs, round(timed_rows / n))`` pairs.
    """
    X, make = _problem(name, device)
    nets = {e: make(e, 1) for e in ("plain", "l2rw")}
    for net, X_fit, y_fit in nets.values():
        net.partial_fit(X_fit, y_fit)
    pairs = max(min_pairs, round(timed_rows / len(X)))
    seconds = {e: [] for e in nets}
    for r in range(pairs):
        for e in (("plain", "l2rw") if r % 2 == 0 else ("l2rw", "plain")):
            net, X_fit, y_fit = nets[e]
            net.partial_fit(X_fit, y_fit)
            seconds[e].append(net.history[-1, "dur"])
    print(json.dumps({"name": name, "pairs": pairs, "seconds": seconds,
                      "meta_gradient": nets["l2rw"][0].meta_gradient_}))


def _child(*args):
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale", *args],
                          capture_output=True, text=True, check=True, cwd=HERE.parent)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row


def run(names, device, min_pairs=3, timed_rows=TIMED_ROWS):
    """Measure every data set: memory of each estimator, then the interleaved timing.

    Returns
    -------
    dict
        ``name -> {"plain": memory row, "l2rw": memory row, "time": timing row}``.
    """
    results = {}
    for name in names:
        results[name] = {e: _child("--memory-child", name, e, "--device", device)
                         for e in ("plain", "l2rw")}
        results[name]["time"] = _child("--time-child", name, "--device", device,
                                       "--timed-rows", str(timed_rows),
                                       "--min-pairs", str(min_pairs))
    return results


#: The bars: the generated sets' time ratios within this factor of each other count
#: as flat; L2RW's peak memory at most this many times plain's.
FLAT, MEMORY = 1.3, 1.5


def summary(rows):
    """What the report computes from :func:`run`'s rows.

    Returns
    -------
    per_set : dict
        name -> ``plain_s``, ``l2rw_s`` (medians of the epoch times), ``time_ratio``
        (the median of the ratios within each pair) and ``memory_ratio``.
    bars : dict
        ``flat``: max / min of the generated sets' time ratios (nan without any),
        ``memory``: the worst memory ratio.
    """
    per_set = {}
    for name, r in rows.items():
        sp, sl = r["time"]["seconds"]["plain"], r["time"]["seconds"]["l2rw"]
        per_set[name] = dict(plain_s=median(sp), l2rw_s=median(sl),
                             time_ratio=paired_ratio(sl, sp),
                             memory_ratio=r["l2rw"]["peak_mib"] / max(r["plain"]["peak_mib"],
                                                                      1e-9))
    generated = [s["time_ratio"] for n, s in per_set.items() if n != "kdd_census"]
    flat = max(generated) / min(generated) if generated else float("nan")
    return per_set, dict(flat=flat, memory=max(s["memory_ratio"] for s in per_set.values()))


def render(rows, meta):
    """``scale.md`` of :func:`run`'s rows and the run's metadata (:func:`report`)."""
    lines = [
        "# Scale: time per epoch and peak memory as n grows", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']}, device {meta['device']}  ",
        f"Versions: {meta['versions']}", "",
        "Batch 256, MLP d-256-256-k (logits), SGD lr=0.05. Plain skorch trains on noisy "
        "+ clean rows through its default DataLoader; L2RWClassifier (auto) on the "
        "noisy rows with a clean set of 300 rows.",
        "",
        "Time: both estimators in one process, one untimed epoch each, then epochs "
        "alternating between them (`partial_fit`, the first of each pair switching); "
        f"a set of n rows gets max({meta['min_pairs']}, round({meta['timed_rows']:,} / n)) "
        "pairs. Reported: medians of skorch's per-epoch `dur`, and the median over pairs "
        "of the ratio within each pair (seconds apart, so a slow spell of this shared "
        "machine hits both).",
        "",
        "Memory: each estimator's two-epoch `fit` in a fresh subprocess; the growth of "
        "the process's high-water resident set size during `fit` (`VmHWM`, reset "
        "through /proc/self/clear_refs just before it; the data set is already loaded "
        "and not counted).",
        ""]
    per_set, bars = summary(rows)
    body = []
    for name, r in rows.items():
        p, t, s = r["plain"], r["time"], per_set[name]
        body.append([name if name == "kdd_census" else f"generated {int(name):,}",
                     f"{p['rows']:,} x {p['features']}", f"{p['data_mib']:.0f}",
                     str(t["pairs"]), f"{s['plain_s']:.3g}", f"{s['l2rw_s']:.3g}",
                     f"{s['time_ratio']:.2f}", f"{p['peak_mib']:.0f}",
                     f"{r['l2rw']['peak_mib']:.0f}", f"{s['memory_ratio']:.2f}"])
    lines += markdown_table(
        ["data set", "rows x features", "data (MiB)", "pairs", "plain s/epoch",
         "L2RW s/epoch", "time ratio", "plain peak (MiB)", "L2RW peak (MiB)",
         "memory ratio"], body, align="ll" + "r" * 8)
    lines += ["", "## Bars", "",
              f"- time ratio flat as n grows (generated sets): max/min of the ratios = "
              f"{bars['flat']:.2f} -> {'PASS' if bars['flat'] <= FLAT else 'FAIL'} "
              f"(<= {FLAT} counted as flat)",
              f"- L2RW peak memory <= {MEMORY}x plain: worst {bars['memory']:.2f}x -> "
              f"{'PASS' if bars['memory'] <= MEMORY else 'FAIL'}", ""]
    return "\n".join(lines)


def report_saved(saved):
    """``scale.md`` of what a run's JSON holds (``--render``)."""
    return render(saved["rows"], saved["meta"])


def report(results, run, device, out, timed_rows=TIMED_ROWS, min_pairs=3):
    """Write ``scale.md`` (``scale_cuda.md``) and, next to it, the rows with the run's
    record as JSON (``--render`` rebuilds the report from them).

    Parameters
    ----------
    results : dict
        :func:`run`'s rows.
    run : benchmarks.environment.StudyRun
        The run, timed from its creation: it writes the files
        (:meth:`~benchmarks.environment.StudyRun.finish`), its record
        :func:`~benchmarks.environment.run_record`'s with scale's fields.
    device : str
    out : str or pathlib.Path
    timed_rows, min_pairs : int
        The run's settings, which the report states.

    Returns
    -------
    pathlib.Path
        The report's path.
    """
    import torch

    name = "scale" if device == "cpu" else "scale_cuda"
    # The record's own machine line (with the cores and torch threads) and the date
    # the report shows: the end of the run, to the minute, as runs before the
    # record kept it (the committed scale.json has it, and no start or wall time).
    meta = dict(machine=f"{cpu_model()}, {os.cpu_count()} cores, "
                        f"{torch.get_num_threads()} torch threads",
                device=device, timed_rows=timed_rows, min_pairs=min_pairs,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    _, text = run.finish(results, report_saved, out, meta=meta, name=name)
    print(text)
    return Path(out) / f"{name}.md"


# ------------------------------------------------------------------ data-parallel

PARALLEL_ROWS = 50_000


def parallel_child(rank, world, rendezvous, rows, epochs, device, out, dtype="float32"):
    """One rank of a data-parallel fit of the scale setting; rank 0 prints a JSON line.

    Every rank is given the whole X and trains its shard of each global batch of
    256. One untimed epoch, then ``epochs`` timed ones (skorch's ``dur``). Then the
    step's two collectives alone, on buffers of their sizes, 50 times each: their
    cost per step. Rank 0 saves the last epoch's weights to ``out`` for the check
    against one process.
    """
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, dtype))  # the module's parameters
    dist = torch.distributed
    if world > 1:
        if device == "cuda":
            torch.cuda.set_device(rank)
        dist.init_process_group("nccl" if device == "cuda" else "gloo",
                                init_method=f"file://{rendezvous}", rank=rank,
                                world_size=world)
    on = f"cuda:{rank}" if device == "cuda" else device
    _, make = _problem(str(rows), on)
    net, X_fit, y_fit = make("l2rw", 1)
    net.partial_fit(X_fit, y_fit)
    seconds = []
    for _ in range(epochs):
        net.partial_fit(X_fit, y_fit)
        seconds.append(net.history[-1, "dur"])
    n_params = sum(p.numel() for p in net.module_.parameters() if p.requires_grad)
    batch = net.batch_size
    row = {"world": world, "seconds": seconds, "steps": len(net.history[-1, "batches"]),
           "n_params": n_params, "batch": batch, "meta_gradient": net.meta_gradient_}
    if world > 1:
        comm = torch.device(on) if device == "cuda" else torch.device("cpu")
        reduce_buf = torch.zeros(n_params + 2, device=comm)
        gather_buf = torch.zeros(2 + 2 * -(-batch // world), dtype=torch.float64,
                                 device=comm)
        gathered = [torch.empty_like(gather_buf) for _ in range(world)]
        for name, op in (("all_reduce_s", lambda: dist.all_reduce(reduce_buf)),
                         ("all_gather_s", lambda: dist.all_gather(gathered, gather_buf))):
            op()
            dist.barrier()
            start = time.perf_counter()
            for _ in range(50):
                op()
            if device == "cuda":
                torch.cuda.synchronize()
            row[name] = (time.perf_counter() - start) / 50
        row["all_reduce_bytes"] = reduce_buf.numel() * reduce_buf.element_size()
        row["all_gather_bytes"] = gather_buf.numel() * gather_buf.element_size() * world
    if rank == 0:
        np.save(Path(out) / f"weights-{world}-{dtype}.npy", net.sample_weights_)
        print(json.dumps(row))
    if world > 1:
        dist.barrier()  # no rank tears the group down while another still uses it
        dist.destroy_process_group()
        # gloo's threads can still be winding down when the interpreter exits, and
        # then C++ aborts ("terminate called without an active exception") after the
        # row was written: end the child at once, its work being done.
        sys.stdout.flush()
        os._exit(0)


def _launch(world, rows, epochs, device, tmp, dtype="float32"):
    """``world`` processes of :func:`parallel_child` (one torch thread each); rank 0's
    row."""
    rendezvous = Path(tmp) / f"rendezvous-{world}-{time.monotonic_ns()}"
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    logs = [Path(tmp) / f"log-{world}-{rank}" for rank in range(world)]
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.scale", "--parallel-child",
                               str(rank), str(world), str(rendezvous), str(rows), str(epochs),
                               "--device", device, "--out", str(tmp),
                               "--parallel-dtype", dtype],
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              cwd=HERE.parent)
             for rank, log in enumerate(logs)]
    for proc in procs:
        proc.wait(timeout=1800)
    outputs = [log.read_text() for log in logs]
    for rank, (proc, text) in enumerate(zip(procs, outputs)):
        if proc.returncode:
            raise RuntimeError(f"rank {rank} of the {world}-process fit failed:\n"
                               f"{text[-3000:]}")
    return json.loads([line for line in outputs[0].splitlines()
                       if line.startswith("{")][-1])


def run_parallel(worlds, rows=PARALLEL_ROWS, pairs=3, epochs=2, device="cpu"):
    """Fits on 1 and on each of ``worlds`` processes, launched in turn ``pairs`` times
    (the order switching each time, so that a slow spell hits all alike).

    Returns
    -------
    dict
        ``"runs"``: world -> list of rank 0's rows, one per launch; ``"max_weight_diff"``:
        run -> the largest difference of each epoch's weights from one process's
        (the last launch of each), in float32 and in float64.
    """
    import tempfile

    import numpy as np

    worlds = [1] + [w for w in worlds if w != 1]
    runs = {w: [] for w in worlds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(pairs):
            for world in (worlds if r % 2 == 0 else worlds[::-1]):
                runs[world].append(_launch(world, rows, epochs, device, tmp))
                print(runs[world][-1], flush=True)
        # Float rounding, which SGD amplifies from step to step, or a mistake? The
        # same fits in float64: rounding shrinks by 9 orders, a mistake would not.
        for world in worlds:
            _launch(world, rows, epochs, device, tmp, dtype="float64")

        def load(world, dtype):
            return np.load(Path(tmp) / f"weights-{world}-{dtype}.npy")

        diff = {f"{w} processes, {dtype}":
                np.abs(load(w, dtype) - load(1, dtype)).max(axis=1).tolist()
                for dtype in ("float32", "float64") for w in worlds[1:]}
    return {"runs": runs, "max_weight_diff": diff, "rows": rows, "pairs": pairs,
            "epochs": epochs, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores", "versions": versions_line()}


#: :func:`run_parallel`'s fields that the saved record keeps, as (its key, the
#: record's): its setting and what it says about the machine. ``rows``, the number of
#: generated rows, is ``parallel_rows`` there (the saved ``rows`` are the launches').
PARALLEL_RECORD = (("machine", "machine"), ("versions", "versions"),
                   ("rows", "parallel_rows"), ("pairs", "pairs"), ("epochs", "epochs"),
                   ("date", "date"))


def parallel_results(saved):
    """:func:`run_parallel`'s results, with the run's ``command`` and ``device``, from
    what a run's JSON holds (:func:`report_parallel`).

    Parameters
    ----------
    saved : dict
        ``{"meta": record, "max_weight_diff", "rows": world -> launches}``, or the
        flat layout written before the record was
        :func:`~benchmarks.environment.run_record`'s (``runs`` and the setting at
        the top; read as it is).

    Returns
    -------
    dict
        ``runs`` keyed by the number of processes (an int, JSON made it a string),
        ``max_weight_diff``, the setting, ``command`` and ``device``; ``machine``
        and ``versions`` where the run recorded them.
    """
    if "runs" in saved:  # the flat layout
        results = dict(saved)
        runs = results["runs"]
    else:
        meta = saved["meta"]
        results = {key: meta[field] for key, field in PARALLEL_RECORD if field in meta}
        results.update(max_weight_diff=saved["max_weight_diff"], command=meta["command"],
                       device=meta["device"])
        runs = saved["rows"]
    results["runs"] = {int(w): rows for w, rows in runs.items()}
    return results


def load_parallel(path):
    """The rows :func:`report_parallel` wrote next to its report (JSON), as
    :func:`run_parallel` returned them (:func:`parallel_results`)."""
    return parallel_results(load_rows(path))


def _launch_step(row):
    """Seconds per step of one launch: the median over its timed epochs."""
    return median([s / row["steps"] for s in row["seconds"]])


def parallel_scaling(results):
    """Per world (number of processes): ``step_s``, the median seconds per step over
    its launches, and ``ratio``, its time against one process's, the median of the
    ratios taken within each round of launches."""
    single = [_launch_step(row) for row in results["runs"][1]]
    out = {}
    for world, rows in results["runs"].items():
        steps = [_launch_step(row) for row in rows]
        out[world] = dict(step_s=median(steps), ratio=paired_ratio(steps, single))
    return out


def render_parallel(results, command, device):
    """``scale_parallel.md``: per-step time of each world against one process, in the
    same run, with the collectives' bytes and measured cost.

    Parameters
    ----------
    results : dict
        :func:`run_parallel`'s (or :func:`parallel_results` of a saved run).
    command, device : str

    Returns
    -------
    str
    """
    runs = results["runs"]
    first = runs[1][0]
    lines = [
        "# Scale: one fit on several processes (data-parallel L2RW)", "",
        f"Command: `{command}`  ",
        f"Date: {results['date']}  ",
        # Runs before the record kept them: the machine rendering them.
        f"Machine: {results.get('machine') or f'{cpu_model()}, {os.cpu_count()} cores'}, "
        f"device {device}, "
        f"backend {'nccl' if device == 'cuda' else 'gloo'}  ",
        f"Versions: {results.get('versions') or versions_line()}", "",
        f"The scale setting (generated {results['rows']:,} rows x {N_FEATURES} features, "
        f"MLP d-256-256-k, {first['n_params']:,} parameters, global batch "
        f"{first['batch']}, L2RWClassifier auto = {first['meta_gradient']}) fitted by 1 "
        "process and by W processes (`torch.distributed`, one torch thread each, every "
        "rank given the whole X). Each launch: one untimed epoch, then "
        f"{results['epochs']} timed epochs; the processes are launched in turn "
        f"{results['pairs']} times, the order switching each time. Per step: skorch's "
        "epoch `dur` / steps, the median within a launch; the ratio is taken within "
        "each round of launches and its median reported.", ""]
    body = []
    for world, row in parallel_scaling(results).items():
        step, ratio = row["step_s"], row["ratio"]
        body.append([str(world), f"{step * 1e3:.2f} ms", f"{ratio:.2f}",
                     f"{first['batch'] / step:,.0f}", f"{1 / ratio:.2f}",
                     f"{1 / ratio / world:.0%}"])
    lines += markdown_table(["processes", "s/step", "ratio to 1 process", "rows/s",
                             "speed-up", "scaling efficiency"], body, align="r" * 6)
    lines += ["", "## What the collectives cost", "",
              "Per step a rank sends its shard's meta-gradients (one `all_gather` of "
              "2 + 2 ceil(B / W) float64 per rank) and its share of the weighted "
              "gradient with the loss (one `all_reduce` of n_params + 2 float32). "
              "Measured alone on buffers of those sizes, 50 times each, after the fit:",
              ""]
    body = []
    for world, rows in runs.items():
        if world == 1:
            continue
        gather = median([r["all_gather_s"] for r in rows])
        reduce = median([r["all_reduce_s"] for r in rows])
        step = median([_launch_step(r) for r in rows])
        body.append([str(world), f"{rows[0]['all_gather_bytes']:,}", f"{gather * 1e3:.3f} ms",
                     f"{rows[0]['all_reduce_bytes']:,}", f"{reduce * 1e3:.3f} ms",
                     f"{(gather + reduce) / step:.0%}"])
    lines += markdown_table(["processes", "all_gather bytes", "all_gather s",
                             "all_reduce bytes", "all_reduce s", "collectives / step"],
                            body, align="r" * 6)
    epochs = len(next(iter(results["max_weight_diff"].values())))
    lines += ["", "## Exactness", "",
              "The largest difference of any row's weight from one process's, per "
              "epoch (the weights of a batch sum to 1; a batch has "
              f"{first['batch']} rows). The all-reduce sums the gradient in another "
              "order than one process does, and SGD amplifies that rounding from "
              "step to step; the same fits with float64 parameters show whether the "
              "difference is rounding (it shrinks by orders of magnitude) or a "
              "mistake (it would not).", ""]
    lines += markdown_table(["run", *(f"epoch {e + 1}" for e in range(epochs))],
                            [[name, *(f"{d:.1e}" for d in per_epoch)]
                             for name, per_epoch in results["max_weight_diff"].items()])
    lines += ["", "## Reading", "",
              "W processes on W cores against one process on one core: the speed-up "
              "would be W if the step were all arithmetic on the shard. Three parts do "
              "not shrink with W: the clean batch's forward and backward (the same on "
              "every rank), skorch's loop around each step, and the collectives. On a "
              "2-core machine whose cores the processes share with everything else, "
              "this table shows correctness and overhead, not the scaling a node of "
              "GPUs would give.", ""]
    return "\n".join(lines)


def report_parallel_saved(saved):
    """``scale_parallel.md`` of what a run's JSON holds (``--render-parallel``)."""
    results = parallel_results(saved)
    return render_parallel(results, results["command"], results["device"])


def report_parallel(results, run, device, out):
    """Write ``scale_parallel.md`` (``scale_parallel_cuda.md``) and its rows,
    ``scale_parallel.json``, through ``run``
    (:meth:`~benchmarks.environment.StudyRun.finish`): ``{"meta": the record,
    "max_weight_diff", "rows": world -> rank 0's row of each launch}``, the record
    :func:`~benchmarks.environment.run_record`'s with the setting
    (:data:`PARALLEL_RECORD`) and the device.

    Parameters
    ----------
    results : dict
        :func:`run_parallel`'s.
    run : benchmarks.environment.StudyRun
        The run, timed from its creation.
    device : str
    out : str or pathlib.Path

    Returns
    -------
    pathlib.Path
        The report's path.
    """
    name = "scale_parallel" if device == "cpu" else "scale_parallel_cuda"
    meta = {field: results[key] for key, field in PARALLEL_RECORD}
    _, text = run.finish(results["runs"], report_parallel_saved, out,
                         meta=dict(meta, device=device), name=name,
                         max_weight_diff=results["max_weight_diff"])
    print(text)
    return Path(out) / f"{name}.md"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10000", "100000", "1000000"])
    parser.add_argument("--no-kdd", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-pairs", type=int, default=3,
                        help="timed epoch pairs per data set, at least")
    parser.add_argument("--timed-rows", type=int, default=TIMED_ROWS,
                        help="rows to pass through in the timed epochs, at least")
    add_out_argument(parser)
    add_render_argument(parser, "scale.md (scale_cuda.md)")
    parser.add_argument("--memory-child", nargs=2, metavar=("NAME", "ESTIMATOR"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--time-child", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--parallel", nargs="+", type=int, metavar="W",
                        help="the data-parallel part: 1 process against W processes")
    parser.add_argument("--parallel-rows", type=int, default=PARALLEL_ROWS)
    parser.add_argument("--render-parallel", type=Path, metavar="JSON",
                        help="rebuild scale_parallel.md from the rows a run wrote")
    parser.add_argument("--parallel-child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--parallel-dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true",
                        help="700 and 1,000 rows, no download, 2 timed pairs (CI)")
    args = parser.parse_args(argv)
    args.out = run_folder(args.out, args.smoke and not args.render, "scale")
    if args.parallel_child:
        rank, world, rendezvous, rows, epochs = args.parallel_child
        return parallel_child(int(rank), int(world), rendezvous, int(rows), int(epochs),
                              args.device, args.out, args.parallel_dtype)
    if args.render:
        return rerender(args.render, args.out, report_saved)
    if args.render_parallel:
        return rerender(args.render_parallel, args.out, report_parallel_saved)
    if args.parallel:
        # Timed from here: the record's wall time is the measurement's.
        study = StudyRun("scale", argv)
        if args.smoke:
            results = run_parallel(args.parallel, rows=1000, pairs=1, epochs=1,
                                   device=args.device)
        else:
            results = run_parallel(args.parallel, args.parallel_rows, args.min_pairs,
                                   device=args.device)
        return report_parallel(results, study, args.device, args.out)
    if args.smoke:
        args.sizes, args.no_kdd, args.min_pairs, args.timed_rows = ["700", "1000"], True, 2, 1000
    if args.memory_child:
        return child_memory(*args.memory_child, args.device)
    if args.time_child:
        return child_time(args.time_child, args.device, args.timed_rows, args.min_pairs)
    if args.min_pairs < 1:
        parser.error("--min-pairs must be at least 1")
    names = list(args.sizes) + ([] if args.no_kdd else ["kdd_census"])
    # Timed from here: the record's wall time is the measurement's.
    study = StudyRun("scale", argv)
    results = run(names, args.device, args.min_pairs, args.timed_rows)
    return report(results, study, args.device, args.out, args.timed_rows, args.min_pairs)


if __name__ == "__main__":
    main()
