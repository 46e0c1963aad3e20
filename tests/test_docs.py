"""Every Python code block of README.rst and the user guide runs, on small data.

Blocks of one document run in order in one namespace, which starts with the names
the prose assumes (``X_noisy``, ``clean_X``, ``column_transformer``...) bound to small
generated or bundled data. A block preceded by a ``.. skip-doctest: <reason>``
comment is not run (a Dask cluster, a GPU).
"""

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_l2rw.noise import flip_labels, split_clean

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.rst", ROOT / "docs" / "user_guide.rst"]


def code_blocks(path):
    """``(line number, code, skip reason or None)`` of every Python code block."""
    lines = path.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1)
                         if lines[j].strip()), "")
        skip = previous[len(".. skip-doctest:"):].strip() if previous.startswith(
            ".. skip-doctest:") else None
        body, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith("   ")):
            body.append(lines[j][3:])
            j += 1
        blocks.append((i + 1, "\n".join(body).strip() + "\n", skip))
    return blocks


def namespace():
    """The names the documentation's examples assume, on small data."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X_train, y_train, X_test, y_test = X[:700], y[:700], X[700:900], y[700:900]
    X_noisy, y_true, clean_X, clean_y = split_clean(X_train, y_train, 10, random_state=0)
    y_noisy, _ = flip_labels(y_true, 0.4, "background", background_class=0,
                             random_state=0)
    rng = np.random.RandomState(0)
    n = 360
    table = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], n),
                          "size": rng.normal(size=n) * 100, "noise": rng.normal(size=n)})
    labels = ((table["colour"] == "red") ^ (table["size"] > 0)).astype(int).to_numpy()
    column_transformer = ColumnTransformer(
        [("onehot", OneHotEncoder(), ["colour"]),
         ("scale", StandardScaler(), ["size", "noise"])], sparse_threshold=0)
    # a table with its audited rows inside: the clean rows stacked under the noisy ones
    audited = np.r_[np.zeros(len(y_noisy), bool), np.ones(len(clean_y), bool)]
    return dict(X_noisy=X_noisy, y_noisy=y_noisy, clean_X=clean_X, clean_y=clean_y,
                X_table=np.vstack([X_noisy, clean_X]), y_table=np.r_[y_noisy, clean_y],
                audited=audited, mask=audited,
                X_test=X_test, y_test=y_test, X=table.iloc[60:], y=labels[60:],
                X_clean=table.iloc[:60], y_clean=labels[:60],
                column_transformer=column_transformer)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_code_blocks_run(path, one_thread, request):
    blocks = code_blocks(path)
    assert blocks, f"{path.name} has no Python code block"
    scope = namespace()
    # a block may switch on metadata routing: restored for the tests that follow
    stack = contextlib.ExitStack()
    stack.enter_context(sklearn.config_context())
    request.addfinalizer(stack.close)
    for line, code, skip in blocks:
        if skip:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), scope)
            except Exception as exc:  # name the block that failed
                raise AssertionError(f"{path.name}, block at line {line}: {exc!r}") from exc


def test_skipped_blocks_say_why():
    for path in DOCUMENTS:
        for line, _, skip in code_blocks(path):
            assert skip is None or re.search(r"\w", skip), f"{path.name}:{line}"
