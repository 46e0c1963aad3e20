"""Running a study's tasks: in one process or several, each with its thread limits."""

from __future__ import annotations

import contextlib
import time


@contextlib.contextmanager
def limited_threads(threads):
    """``threads`` torch threads and OpenMP/BLAS threads (HGB) inside; as before after.

    Small nets gain nothing from several threads, and on a shared machine threads
    that wait for each other (OpenMP spins) cost far more than they bring.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


def execute(tasks, jobs=1, log=print):
    """Run the tasks (in ``jobs`` processes) and return all result rows."""
    rows, start = [], time.perf_counter()
    if jobs <= 1:
        for i, (label, fn, args) in enumerate(tasks, 1):
            t0 = time.perf_counter()
            rows += fn(*args)
            log(f"[{i}/{len(tasks)}] {label}: {time.perf_counter() - t0:.0f} s "
                f"(elapsed {time.perf_counter() - start:.0f} s)")
        return rows
    from joblib import Parallel, delayed

    def labelled(label, fn, args):
        t0 = time.perf_counter()
        return label, time.perf_counter() - t0, fn(*args), time.perf_counter() - t0

    # max_nbytes=None: arrays travel pickled, not as read-only memory maps.
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                        max_nbytes=None)
    done = 0
    for label, _, out, seconds in parallel(delayed(labelled)(label, fn, args)
                                           for label, fn, args in tasks):
        done += 1
        rows += out
        log(f"[{done}/{len(tasks)}] {label}: {seconds:.0f} s "
            f"(elapsed {time.perf_counter() - start:.0f} s)")
    return rows

