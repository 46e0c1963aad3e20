"""What a benchmark ran on: CPU model, load average and library versions.

Shared by the studies of this package so that every report describes its machine
and its command the same way.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

#: Where every study writes its report and rows unless told otherwise (``--out``).
RESULTS = Path(__file__).resolve().parent / "results"

#: Libraries every report names, as (import name, name in the report).
CORE = (("torch", "torch"), ("skorch", "skorch"), ("sklearn", "scikit-learn"),
        ("numpy", "numpy"))


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average():
    """The 1, 5 and 15 minute load averages as one string, or "n/a"."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def versions(*extra):
    """Python's and the libraries' versions, in report order.

    Parameters
    ----------
    *extra : str
        Further import names (``"cleanlab"``, ``"pandas"``...); one that is not
        installed is reported as such.

    Returns
    -------
    dict
        Report name -> version string.
    """
    out = {"python": platform.python_version()}
    for module, name in CORE + tuple((m, m) for m in extra):
        try:
            out[name] = __import__(module).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def versions_line(*extra):
    """:func:`versions` as one line: ``python 3.11.7, torch 2.13.0, ...``."""
    return ", ".join(f"{name} {version}" for name, version in versions(*extra).items())


def report_header(title, *, command, started, elapsed, smoke=False, load=None,
                  machine=None, versions=None):
    """The first lines of a side-study report: title, command, date, wall time,
    machine and versions, and a warning when the run was only a ``--smoke`` test.

    Parameters
    ----------
    title : str
        Markdown heading text (without ``#``).
    command : str
        The command line as run.
    started : datetime.datetime or str
        UTC start time (a string: in ISO format, as :func:`run_record` keeps it).
    elapsed : float
        Wall time in seconds.
    smoke : bool
        Whether this was a ``--smoke`` run (its numbers are not results).
    load : str or None
        The load average at the end of the run, as recorded then; None reads it now
        (for a report written as the run ends).
    machine, versions : str or None
        The CPU model and :func:`versions_line` as recorded by the run; None reads
        them now.

    Returns
    -------
    list of str
    """
    if isinstance(started, str):
        started = datetime.datetime.fromisoformat(started)
    lines = [
        f"# {title}", "",
        f"Command: `{command}`  ",
        f"Date: {started:%Y-%m-%d %H:%M} UTC  ",
        f"Wall time: {elapsed / 60:.1f} min  ",
        f"Machine: {machine or cpu_model()}, load average at the end "
        f"{load_average() if load is None else load}  ",
        f"Versions: {versions or versions_line()}", "",
    ]
    if smoke:
        lines += ["**A `--smoke` run on digits: it only shows that the script runs.**", ""]
    return lines


def command_line(study, argv=None):
    """The command that reruns ``study`` with ``argv`` (default: this process's
    arguments), as a report quotes it: ``python -m benchmarks.<study> ...``."""
    args = sys.argv[1:] if argv is None else argv
    return f"python -m benchmarks.{study}" + "".join(f" {shlex.quote(a)}" for a in args)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def chosen_names(parser, text, known, what):
    """The names a comma-separated option lists (``--datasets digits,adult``), each
    checked against ``known``: an unknown one is ``parser``'s usage error, naming
    the choices, before anything runs.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    text : str
        The option's value.
    known : iterable of str
    what : str
        What the names are, as the error says it ("data sets for this mode").

    Returns
    -------
    list of str
        The names in the order given, blanks dropped.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown {what}: {sorted(unknown)} (choose from {sorted(known)})")
    return names


def add_jobs_argument(parser):
    """``--jobs N`` (a positive integer; None when not given: the study's default,
    2 worker processes, 1 for ``--smoke``)."""
    parser.add_argument("--jobs", type=_positive_int, default=None,
                        help="worker processes (default 2; 1 for --smoke)")


def worker_count(args):
    """The worker processes a run uses: ``--jobs`` (:func:`add_jobs_argument`), else
    2, or 1 for ``--smoke`` (one process keeps a smoke run's traceback readable)."""
    return args.jobs or (1 if args.smoke else 2)


def run_record(command, started, elapsed, **more):
    """What :func:`report_header` says about a run, as its rows' JSON keeps it:
    recorded as the run ends, so that the report rebuilt from the rows is the same
    byte for byte (also on another machine).

    Parameters
    ----------
    command : str
    started : datetime.datetime
        UTC start time (kept in ISO format).
    elapsed : float
        Wall time in seconds.
    **more
        Further fields (``smoke=True``...); one of the record's own (``versions``,
        ``machine``) replaces what it would read, for a study that describes it its
        own way (``versions_line("cleanlab")``).

    Returns
    -------
    dict
        :func:`report_header`'s keywords.
    """
    record = dict(command=command, started=started.isoformat(), elapsed=elapsed,
                  load=load_average(), machine=cpu_model(), versions=versions_line())
    return {**record, **more}


class StudyRun:
    """One run of a study, timed from its creation; :meth:`finish` writes it.

    Parameters
    ----------
    study : str
        The module name under ``benchmarks`` (also the report's file name).
    argv : list of str or None
        The arguments, as :func:`command_line` quotes them.
    command : str or None
        The command the record names, given whole (a run started from Python that
        reports another command line); None: :func:`command_line`'s.
    """

    def __init__(self, study, argv=None, *, command=None):
        self.study = study
        self.command = command_line(study, argv) if command is None else command
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self._t0 = time.perf_counter()

    def finish(self, rows, report, out, *, meta=None, name=None, indent=1, **more):
        """The rows with the run's record (:func:`run_record`, plus ``meta``) and
        ``more``, as ``saved``; ``report(saved)`` is written with the rows as JSON
        into ``out`` as ``<name>.md`` (``name`` defaults to the study's) unless
        ``out`` is None. ``indent`` is the JSON's (:func:`save_rows`; None: one
        line, for a study with thousands of rows).

        Returns
        -------
        saved : dict
            What the JSON holds: ``meta``, ``rows`` and ``more``.
        text : str
            The report.
        """
        record = run_record(self.command, self.started, time.perf_counter() - self._t0,
                            **(meta or {}))
        saved = {"rows": rows, **more, "meta": record}
        text = report(saved)
        if out is not None:
            write_report(Path(out) / f"{name or self.study}.md", text,
                         dict(saved, indent=indent))
        return saved, text


def save_rows(path, rows, meta, *, indent=1, **more):
    """Write a run's rows and its metadata as JSON: ``{"meta", **more, "rows"}``."""
    Path(path).write_text(json.dumps({"meta": meta, **more, "rows": rows},
                                     indent=indent) + "\n")


def load_rows(path):
    """The dict :func:`save_rows` wrote (JSON turns tuples into lists)."""
    return json.loads(Path(path).read_text())


def write_report(path, text, saved=None):
    """Write the report ``text`` to ``path`` and, given ``saved`` (the keywords of
    :func:`save_rows`), the rows as JSON next to it; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if saved is not None:
        save_rows(path.with_suffix(".json"), **saved)
    return path


def rerender(path, out, render):
    """``--render``: the report ``render(load_rows(path))`` rebuilt from the rows a
    run wrote, into ``out`` under the JSON's name (``.md``); returns its path."""
    path = Path(path)
    return write_report(Path(out) / path.with_suffix(".md").name, render(load_rows(path)))


def add_render_argument(parser, report):
    """``--render JSON``: rebuild ``report`` (its name) from the rows a run wrote."""
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help=f"rebuild {report} from the rows a run wrote next to it "
                             "(the .json of the same name), into --out")


def add_report_arguments(parser, report, smoke):
    """``--smoke`` (``smoke`` is its help), ``--out`` and ``--render`` of a study
    that writes ``report`` and its rows; :func:`report_folder` reads them."""
    parser.add_argument("--smoke", action="store_true", help=smoke)
    stem = Path(report).stem
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for {stem}.{{json,md}} (default: results/; "
                             "--smoke writes nothing unless given)")
    add_render_argument(parser, report)


def run_folder(out, smoke, study):
    """Where a study that must write to run writes: ``out`` when given; else, for a
    smoke run, a new temporary folder (a smoke run never overwrites the committed
    reports); else ``results/``.

    Parameters
    ----------
    out : str, pathlib.Path or None
        The ``--out`` option.
    smoke : bool
        Whether this is a ``--smoke`` (or ``--dry-run``) run.
    study : str
        Names the temporary folder.

    Returns
    -------
    pathlib.Path
    """
    if out is not None:
        return Path(out)
    if smoke:
        return Path(tempfile.mkdtemp(prefix=f"{study}-smoke-"))
    return RESULTS


def add_out_argument(parser):
    """``--out``, for a study that must write to run (:func:`run_folder`:
    ``results/`` by default, a new temporary folder for ``--smoke``)."""
    parser.add_argument("--out", default=None,
                        help="output folder (default: benchmarks/results; a "
                             "--smoke run writes into a new temporary folder)")


def parse_run_arguments(parser, argv, study):
    """``parser``'s arguments (it has ``--smoke`` and :func:`add_out_argument`'s),
    ``args.out`` made the folder the run writes into (:func:`run_folder`, a str)."""
    args = parser.parse_args(argv)
    args.out = str(run_folder(args.out, args.smoke, study))
    return args


def report_folder(args, default):
    """Where a study's report goes: ``--out``, else ``default`` (none for --smoke)."""
    return args.out if args.out is not None else (None if args.smoke else default)


def study_command(study, parser, argv, report, measure, *, beside=None, return_saved=False,
                  name=None, render_beside=False, folder=None):
    """The command line of a study that writes ``report(saved)`` and its rows, once
    ``parser`` has its arguments (:func:`add_report_arguments` and the study's own).

    Parameters
    ----------
    study : str
        The module name under ``benchmarks`` (:class:`StudyRun`).
    parser : argparse.ArgumentParser
    argv : list of str or None
    report : callable
        ``report(saved)``: the report's text from the saved rows.
    measure : callable
        ``measure(args)``: the run, as ``(rows, meta)`` or ``(rows, meta, more)``;
        ``meta`` goes into the run's record and ``more``, a dict, beside the rows
        (:meth:`StudyRun.finish`: a study whose report needs more than the rows and
        the record, such as its configuration, keeps it there).
    beside : callable or None
        ``beside(saved, folder)``: writes a run's further files (a figure) into the
        folder of its report, once the report is written there; ``--render``
        rebuilds the report alone unless ``render_beside``.
    return_saved : bool
        Return what the run's JSON holds (:meth:`StudyRun.finish`'s ``saved``:
        the rows, ``more`` and the record) rather than the rows alone.
    name : callable or None
        ``name(args)``: the file name (no suffix) of the run's report and rows, for a
        study whose options choose among several reports (default: ``study``);
        ``--render`` keeps the name of the JSON it reads.
    render_beside : bool
        ``--render`` also calls ``beside`` with the saved rows, into the folder of
        the rebuilt report (a figure drawn from the rows alone, rebuilt with it).
    folder : callable or None
        ``folder(args)``: where a run writes, for a study whose smoke run writes
        into a new temporary folder (:func:`run_folder`) rather than nowhere
        (default: :func:`report_folder`, ``results/`` unless ``--out``).

    Returns
    -------
    pathlib.Path, rows or dict
        With ``--render``, the report rebuilt from the rows a run wrote
        (:func:`rerender`, into ``--out`` or ``results/``); otherwise the rows
        (``saved`` with ``return_saved``), written with the report into
        ``folder(args)`` (:func:`report_folder`) and printed.
    """
    args = parser.parse_args(argv)
    out = folder(args) if folder is not None else report_folder(args, RESULTS)
    if args.render:
        path = rerender(args.render, out or RESULTS, report)
        if beside is not None and render_beside:
            beside(load_rows(args.render), path.parent)
        return path
    # Timed from here: the report's wall time is the measurement's alone.
    record = StudyRun(study, argv)
    rows, meta, *more = measure(args)
    saved, text = record.finish(rows, report, out, meta=meta,
                                name=name(args) if name is not None else None,
                                **(more[0] if more else {}))
    if beside is not None and out is not None:
        beside(saved, Path(out))
    print(text)
    return saved if return_saved else rows
