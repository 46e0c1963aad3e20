"""benchmarks/fuzz.py: drawn bad calls on a fitted estimator, asserted on the rows."""

import json

import pytest

from benchmarks import fuzz


@pytest.fixture(scope="module")
def rows():
    return fuzz.run(cases=60, seed=3)


def test_no_call_breaks_the_bar(rows):
    outcomes = [r["outcome"] for r in rows]
    assert len(outcomes) == 60
    assert [o for o in outcomes if o.startswith("violation")] == []
    assert {"refused"} <= set(outcomes)
    # Every input form is drawn: arrays (parameters, data), DataFrame, sparse, dict.
    assert {r["kind"] for r in rows} == {"parameter", "data", *fuzz.FORM_FAULTS}


@pytest.mark.parametrize("form", sorted(fuzz.FORM_FAULTS))
def test_every_fault_of_every_form_is_drawable(form):
    """Each fault of each form breaks the input it is given (not the original)."""
    X, y = fuzz._problem(0)
    X = fuzz.as_form(X, form)
    train = fuzz.rows(X, slice(60, 120))
    kept = fuzz.rows(X, slice(60, 120))
    for fault in fuzz.FORM_FAULTS[form]:
        X_bad, y_bad = fuzz.broken_form(form, fault, 0, train, y[60:120])
        assert len(y_bad) in (0, 1, 60), fault
    # the faults copy: the input they were given is untouched
    if form == "sparse":
        assert (train != kept).nnz == 0
    elif form == "frame":
        assert train.equals(kept)
    else:
        assert all((train[k] == kept[k]).all() for k in kept)


def test_a_changed_model_is_a_violation():
    """The check can fail: a 'refusal' that left the weights changed is reported."""
    X, y = fuzz._problem(0)
    base = fuzz.fitted_net(0)

    class Breaking(type(base)):
        def partial_fit(self, X, y=None, **kwargs):
            self.module_.state_dict()[next(iter(self.module_.state_dict()))].add_(1.0)
            raise ValueError("refused after a change")

    broken = Breaking.__new__(Breaking)
    broken.__dict__.update(base.__dict__)
    outcome = fuzz.run_case(broken, ("data", ("nan", 0), "partial_fit"), X[:40], X[60:120],
                            y[60:120])
    assert outcome == "violation: ValueError changed the model"


def test_smoke_report_and_render(tmp_path):
    rows = fuzz.main(["--smoke", "--out", str(tmp_path)])
    text = (tmp_path / "fuzz.md").read_text()
    refused = sum(r["outcome"] == "refused" for r in rows)
    assert f"{len(rows)} cases:" in text and f"{refused} refused" in text
    assert "**0 violations**" in text
    saved = json.loads((tmp_path / "fuzz.json").read_text())
    assert saved["rows"] == rows
    fuzz.main(["--render", str(tmp_path / "fuzz.json"), "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "fuzz.md").read_text() == text
