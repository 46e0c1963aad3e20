"""benchmarks/environment.py: study_command, the command line every study shares."""

import argparse
import datetime
import json
from pathlib import Path

import pytest

from benchmarks.environment import (RESULTS, add_jobs_argument, add_report_arguments,
                                    chosen_names, run_folder, run_record, study_command,
                                    worker_count)


def _report(saved):
    return f"{saved['rows']} {saved['settings']} smoke={saved['meta']['smoke']}\n"


def _command(argv, drawn, **options):
    """A toy study: two rows, its settings beside them, a "figure" noted in drawn."""
    parser = argparse.ArgumentParser()
    add_report_arguments(parser, "toy.md", smoke="tiny")

    def measure(args):
        return [1, 2], dict(smoke=args.smoke), dict(settings="tiny")

    return study_command("toy", parser, argv, _report, measure,
                         beside=lambda saved, folder: drawn.append(folder), **options)


def test_a_run_keeps_more_beside_the_rows_and_draws_beside_its_report(tmp_path):
    drawn = []
    saved = _command(["--smoke", "--out", str(tmp_path / "run")], drawn, return_saved=True)
    assert saved["rows"] == [1, 2] and saved["settings"] == "tiny" and saved["meta"]["smoke"]
    written = json.loads((tmp_path / "run" / "toy.json").read_text())
    assert written["settings"] == "tiny" and written["rows"] == [1, 2]
    assert drawn == [tmp_path / "run"]
    # --smoke without --out writes nothing, so nothing is drawn; the rows come back.
    assert _command(["--smoke"], drawn) == [1, 2] and drawn == [tmp_path / "run"]


def test_render_rebuilds_the_report_alone(tmp_path):
    drawn = []
    _command(["--smoke", "--out", str(tmp_path / "run")], drawn)
    rebuilt = _command(["--render", str(tmp_path / "run" / "toy.json"),
                        "--out", str(tmp_path / "again")], drawn)
    assert rebuilt == tmp_path / "again" / "toy.md"
    assert rebuilt.read_text() == (tmp_path / "run" / "toy.md").read_text()
    assert drawn == [tmp_path / "run"]  # the run's figure only


def test_the_options_may_name_the_report(tmp_path):
    parser = argparse.ArgumentParser()
    add_report_arguments(parser, "toy{,_b}.md", smoke="tiny")
    parser.add_argument("--variant", default="")

    def measure(args):
        return [1, 2], dict(smoke=args.smoke), dict(settings=args.variant)

    def command(argv):
        return study_command("toy", parser, argv, _report, measure,
                             name=lambda args: "toy" + args.variant)

    assert command(["--variant", "_b", "--out", str(tmp_path)]) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_b.json", "toy_b.md"]
    assert json.loads((tmp_path / "toy_b.json").read_text())["settings"] == "_b"
    # --render names the report after the JSON it reads, whatever the options say.
    rebuilt = command(["--render", str(tmp_path / "toy_b.json"), "--out", str(tmp_path / "again")])
    assert rebuilt == tmp_path / "again" / "toy_b.md"
    assert rebuilt.read_text() == (tmp_path / "toy_b.md").read_text()


def test_render_beside_redraws_from_the_saved_rows(tmp_path):
    drawn = []
    parser = argparse.ArgumentParser()
    add_report_arguments(parser, "toy.md", smoke="tiny")
    saved = _command(["--smoke", "--out", str(tmp_path / "run")], drawn, return_saved=True)
    rebuilt = study_command("toy", parser, ["--render", str(tmp_path / "run" / "toy.json"),
                                            "--out", str(tmp_path / "again")], _report,
                            measure=None, render_beside=True,
                            beside=lambda saved, folder: drawn.append((saved, folder)))
    assert rebuilt.read_text() == (tmp_path / "run" / "toy.md").read_text()
    assert drawn[1:] == [(saved, tmp_path / "again")]  # as the run saved them


def test_a_study_names_its_own_versions_in_the_record():
    record = run_record("python -m benchmarks.toy", datetime.datetime(2026, 1, 1), 1.0,
                        versions="numpy 2", smoke=True)
    assert record["versions"] == "numpy 2" and record["smoke"]
    assert list(record)[:6] == ["command", "started", "elapsed", "load", "machine",
                                "versions"]


def test_a_smoke_run_writes_into_a_new_folder_never_the_results():
    first, second = run_folder(None, True, "toy"), run_folder(None, True, "toy")
    assert first != second and not list(first.iterdir())
    assert RESULTS not in first.parents and first != RESULTS
    assert run_folder(None, False, "toy") == RESULTS
    assert run_folder("/some/where", True, "toy") == Path("/some/where")


def test_a_study_may_write_its_smoke_run_into_a_new_folder():
    # folder=: speed's smoke run writes (report, rows, chart) into a new temporary
    # folder, as before its move onto study_command, never into results/.
    drawn = []
    rows = _command(["--smoke"], drawn,
                    folder=lambda args: run_folder(args.out, args.smoke, "toy"))
    assert rows == [1, 2] and len(drawn) == 1 and drawn[0] != RESULTS
    assert sorted(p.name for p in drawn[0].iterdir()) == ["toy.json", "toy.md"]


def test_a_run_may_save_its_rows_on_one_line(tmp_path):
    # indent=None: quality's thousands of rows on one line, as they always were.
    from benchmarks.environment import StudyRun, load_rows

    saved, _ = StudyRun("toy", []).finish([1, 2], _report, tmp_path, meta=dict(smoke=True),
                                          settings="tiny", indent=None)
    text = (tmp_path / "toy.json").read_text()
    assert text.count("\n") == 1 and load_rows(tmp_path / "toy.json") == saved
    assert "indent" not in saved


def test_chosen_names_keeps_the_order_given_and_names_what_is_unknown(capsys):
    parser = argparse.ArgumentParser(prog="toy")
    assert chosen_names(parser, " adult, ,digits", ["digits", "adult", "letter"],
                        "data sets") == ["adult", "digits"]
    with pytest.raises(SystemExit):
        chosen_names(parser, "digits,nope", ["digits", "adult"], "data sets")
    err = capsys.readouterr().err
    assert "unknown data sets: ['nope'] (choose from ['adult', 'digits'])" in err


def test_worker_count_is_jobs_else_two_or_one_for_a_smoke_run(capsys):
    parser = argparse.ArgumentParser(prog="toy")
    parser.add_argument("--smoke", action="store_true")
    add_jobs_argument(parser)
    assert [worker_count(parser.parse_args(argv)) for argv in
            ([], ["--smoke"], ["--jobs", "3"], ["--smoke", "--jobs", "3"])] == [2, 1, 3, 3]
    with pytest.raises(SystemExit):
        parser.parse_args(["--jobs", "0"])
    assert "must be a positive integer" in capsys.readouterr().err
