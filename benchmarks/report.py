"""How every study writes numbers into Markdown: tables, mean ± std, paired ratios.

The studies compute rows; their ``render`` functions turn rows into text with these
few pieces, so that a table, a "mean ± std" cell or a timing ratio reads the same in
every report (and a change of format is made once).
"""

from __future__ import annotations

import math
import statistics

import numpy as np

__all__ = ["markdown_table", "stats", "mean_pm", "percent", "mean_std", "median", "paired_ratio"]


def markdown_table(header, rows, *, align=None):
    """A Markdown table as a list of lines.

    Parameters
    ----------
    header : sequence of str
    rows : iterable of sequences of str
        One sequence of cells per row, as many as ``header``.
    align : str or None, default=None
        One letter per column, ``"l"`` (left) or ``"r"`` (right); None means the
        first column left and the others right, the usual "label, numbers" table.

    Returns
    -------
    list of str
    """
    header = list(header)
    if align is None:
        align = "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must give l or r for each of the {len(header)} "
                         f"columns, got {align!r}")
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    return (["| " + " | ".join(header) + " |", rule]
            + ["| " + " | ".join(row) + " |" for row in rows])


def stats(values):
    """``(mean, std, n)`` over the finite values; None entries are dropped.

    ``(nan, nan, 0)`` when nothing is left, so that a missing cell renders as
    ``n/a`` through :func:`mean_pm` rather than failing.
    """
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return float("nan"), float("nan"), 0
    return float(np.nanmean(v)), float(np.nanstd(v)), int(np.sum(np.isfinite(v)))


def mean_pm(mean, std, n=None, *, scale=1.0, digits=1, signed=False):
    """``"mean ± std"`` scaled (``scale=100`` for percent) and rounded; ``signed``
    writes the mean's sign always (a difference: ``"+0.5 ± 1.5"``).

    The mean alone when it stands for one value (``n == 1``), ``"n/a"`` when it is
    not a number.
    """
    if not math.isfinite(mean):
        return "n/a"
    head = f"{scale * mean:{'+' if signed else ''}.{digits}f}"
    if n == 1:
        return head
    return f"{head} ± {scale * std:.{digits}f}"


def percent(mean, std, n=None):
    """:func:`mean_pm` of a share, in percent: ``0.913, 0.02`` gives ``"91.3 ± 2.0"``."""
    return mean_pm(mean, std, n, scale=100)


def mean_std(values, *, scale=1.0, digits=1, signed=False):
    """``"mean ± std"`` of ``values`` (population std, as NumPy computes it)."""
    v = np.asarray(values, dtype=float)
    return mean_pm(float(v.mean()), float(v.std()), scale=scale, digits=digits,
                   signed=signed)


def median(values):
    """The median, NaN for no values."""
    return statistics.median(values) if len(values) else float("nan")


def paired_ratio(num, den):
    """Median over repeats of ``num[r] / den[r]``.

    Both were timed in the same repeat, moments apart, so a slow spell of the
    machine cancels out of each ratio instead of landing in one median and not the
    other.
    """
    return median([a / b for a, b in zip(num, den)])
