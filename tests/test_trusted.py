"""Trusted rows inside X (``fit(X, y, trusted=mask)``) and TrustedKFold."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (GridSearchCV, HalvingGridSearchCV, cross_validate)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_l2rw import L2RWClassifier, L2RWRegressor, ReweightedClassifier
from sk_l2rw.data import n_rows
from sk_l2rw.model_selection import TrustedKFold
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels
from sk_l2rw.trusted import check_trusted, split_trusted, take

NET = dict(module=MLP, criterion=torch.nn.CrossEntropyLoss, lr=0.1, max_epochs=3,
           batch_size=64, random_state=0, verbose=0, train_split=None)


def _problem(n=600, n_trusted=100, seed=0):
    X, y = load_digits(return_X_y=True)
    X, y = (X[:n] / 16).astype(np.float32), y[:n]
    rng = np.random.RandomState(seed)
    trusted = np.zeros(n, bool)
    trusted[rng.choice(n, n_trusted, replace=False)] = True
    y_noisy, _ = flip_labels(y, 0.4, "background", background_class=0, random_state=seed)
    return X, np.where(trusted, y, y_noisy), trusted


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


class TestCheckTrusted:
    @pytest.mark.parametrize("mask, error, match", [
        (np.ones(5, bool), ValueError, "one entry per row of X \\(6\\)"),
        (np.ones((6, 1), bool), ValueError, "one entry per row"),
        (np.array([0, 1, 0, 1, 0, 1]), TypeError, "boolean mask.*astype\\(bool\\)"),
        (np.zeros(6, bool), ValueError, "marks no row"),
        (np.ones(6, bool), ValueError, "marks every row"),
        (None, ValueError, "trusted is None"),
    ])
    def test_bad_masks(self, mask, error, match):
        with pytest.raises(error, match=match):
            check_trusted(mask, 6)

    def test_split_keeps_order_for_every_input_form(self):
        X = np.arange(12.0).reshape(6, 2)
        y = np.array(list("abcdef"))
        mask = np.array([True, False, False, True, False, False])
        for form in (X, pd.DataFrame(X, columns=["u", "v"]), sp.csr_matrix(X),
                     torch.as_tensor(X), {"a": X, "b": X[:, :1]}):
            Xn, yn, Xt, yt = split_trusted(form, y, mask)
            assert list(yn) == list("bcef") and list(yt) == list("ad")
            dense = (lambda A: np.asarray(A.toarray() if sp.issparse(A) else A))
            got = Xt["a"] if isinstance(Xt, dict) else Xt
            np.testing.assert_array_equal(dense(got), X[[0, 3]])
            assert n_rows(Xn) == 4

    def test_torch_dataset_refused(self):
        data = torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4))
        with pytest.raises(TypeError, match="torch Dataset"):
            split_trusted(data, np.zeros(4), np.array([True, False, False, False]))


@pytest.fixture(scope="module")
def pair():
    """The same fit through trusted=mask and through X_val/y_val."""
    X, y, trusted = _problem()
    by_mask = L2RWClassifier(**NET).fit(X, y, trusted=trusted)
    by_val = L2RWClassifier(**NET).fit(X[~trusted], y[~trusted], X_val=X[trusted],
                                       y_val=y[trusted])
    return X, y, trusted, by_mask, by_val


class TestL2RWTrusted:
    def test_same_weights_and_predictions(self, pair):
        X, _, trusted, by_mask, by_val = pair
        np.testing.assert_array_equal(by_mask.sample_weights_[:, ~trusted],
                                      by_val.sample_weights_)
        np.testing.assert_array_equal(by_mask.predict_proba(X), by_val.predict_proba(X))

    def test_weights_cover_every_row_trusted_are_nan(self, pair):
        X, _, trusted, by_mask, _ = pair
        w = by_mask.sample_weights_
        assert w.shape == (3, len(X))
        assert np.isnan(w[:, trusted]).all() and not np.isnan(w[:, ~trusted]).any()

    def test_trusted_and_x_val_together_refused_and_model_kept(self, pair):
        X, y, trusted, by_mask, _ = pair
        net = clone(by_mask).fit(X, y, trusted=trusted)
        before = net.predict_proba(X)
        with pytest.raises(ValueError, match="not both"):
            net.fit(X, y, X_val=X[:5], y_val=y[:5], trusted=trusted)
        with pytest.raises(ValueError, match="one entry per row"):
            net.fit(X, y, trusted=trusted[:-1])
        np.testing.assert_array_equal(net.predict_proba(X), before)

    def test_partial_fit_appends_full_width_epochs(self, pair):
        X, y, trusted, by_mask, _ = pair
        net = clone(by_mask).set_params(max_epochs=1)
        net.partial_fit(X, y, trusted=trusted).partial_fit(X, y, trusted=trusted)
        assert net.sample_weights_.shape == (2, len(X))

    def test_regressor(self):
        rng = np.random.RandomState(0)
        X = rng.randn(200, 4).astype(np.float32)
        y = (X @ np.arange(1.0, 5.0)).astype(np.float32)
        trusted = np.arange(200) % 5 == 0
        kw = dict(module=MLP, lr=0.01, max_epochs=2, random_state=0, verbose=0,
                  train_split=None)
        a = L2RWRegressor(**kw).fit(X, y, trusted=trusted)
        b = L2RWRegressor(**kw).fit(X[~trusted], y[~trusted], X_val=X[trusted],
                                    y_val=y[trusted])
        np.testing.assert_array_equal(a.sample_weights_[:, ~trusted], b.sample_weights_)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))


class TestReweightedTrusted:
    def test_same_fit_and_weights_for_every_row(self):
        X, y, trusted = _problem(n=500, n_trusted=80)
        hgb = HistGradientBoostingClassifier(max_iter=10, random_state=0)
        net = make_pipeline(StandardScaler(), L2RWClassifier(**NET))
        a = ReweightedClassifier(hgb, net=net).fit(X, y, trusted=trusted)
        b = ReweightedClassifier(hgb, net=net).fit(X[~trusted], y[~trusted],
                                                   X_val=X[trusted], y_val=y[trusted])
        assert a.sample_weight_.shape == (len(X),)
        np.testing.assert_array_equal(a.sample_weight_[~trusted], b.sample_weight_)
        np.testing.assert_array_equal(a.sample_weight_[trusted], 1.0)
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


class TestTrustedKFold:
    def test_folds_hold_out_each_trusted_row_once(self):
        X, y, trusted = _problem()
        seen = []
        for train, test in TrustedKFold(4, shuffle=True, random_state=0).split(
                X, y, trusted=trusted):
            assert trusted[test].all()
            assert set(np.flatnonzero(~trusted)) <= set(train)
            assert not set(train) & set(test)
            assert len(train) + len(test) == len(X)
            seen += test.tolist()
        assert sorted(seen) == np.flatnonzero(trusted).tolist()

    def test_stratified_by_class(self):
        y = np.repeat([0, 1, 2], 40)
        trusted = np.zeros(120, bool)
        trusted[np.r_[0:10, 40:50, 80:100]] = True
        for _, test in TrustedKFold(5).split(np.zeros((120, 1)), y, trusted=trusted):
            assert np.bincount(y[test]).tolist() == [2, 2, 4]

    def test_regression_target_uses_plain_folds(self):
        y = np.linspace(0, 1, 30)
        trusted = np.arange(30) < 9
        tests = [t for _, t in TrustedKFold(3).split(np.zeros((30, 1)), y,
                                                     trusted=trusted)]
        assert [t.tolist() for t in tests] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]

    @pytest.mark.parametrize("cv, kwargs, match", [
        (TrustedKFold(5), {}, "at least 5 trusted rows of every class; .*\\{1: 3\\}"),
        (TrustedKFold(1), {}, "n_splits an integer >= 2"),
        (TrustedKFold(5), {"trusted": None}, "enable metadata routing"),
    ])
    def test_bad_splits(self, cv, kwargs, match):
        y = np.array([0] * 10 + [1] * 10)
        trusted = np.r_[np.ones(5, bool), np.zeros(5, bool), np.ones(3, bool),
                        np.zeros(7, bool)]
        with pytest.raises(ValueError, match=match):
            list(cv.split(np.zeros((20, 1)), y, **{"trusted": trusted, **kwargs}))

    def test_any_estimator_in_cross_validate(self, routing):
        X, y, trusted = _problem()
        result = cross_validate(LogisticRegression(max_iter=1000), X, y,
                                cv=TrustedKFold(3), params={"trusted": trusted},
                                return_indices=True)
        assert all(trusted[test].all() for test in result["indices"]["test"])
        assert len(result["test_score"]) == 3

    def test_grid_search_on_l2rw_in_a_pipeline(self, routing):
        X, y, trusted = _problem()
        pipe = make_pipeline(StandardScaler(), L2RWClassifier(**NET))
        search = GridSearchCV(pipe, {"l2rwclassifier__lr": [0.01, 0.1]},
                              cv=TrustedKFold(3), refit=True)
        search.fit(X, y, trusted=trusted)
        final = search.best_estimator_[-1]
        # the refit saw the trusted rows as its clean set: a column per row of X
        assert final.sample_weights_.shape[1] == len(X)
        assert np.isnan(final.sample_weights_[:, trusted]).all()
        assert len(search.cv_results_["mean_test_score"]) == 2

    def test_halving_search_and_pickle(self, routing):
        X, y, trusted = _problem()
        search = HalvingGridSearchCV(LogisticRegression(max_iter=1000),
                                     {"C": [0.1, 1.0, 10.0]}, cv=TrustedKFold(3),
                                     min_resources=300, random_state=0)
        search.fit(X, y, trusted=trusted)
        assert search.best_params_["C"] in (0.1, 1.0, 10.0)
        restored = pickle.loads(pickle.dumps(TrustedKFold(3, shuffle=True,
                                                          random_state=1)))
        assert vars(restored) == {"n_splits": 3, "shuffle": True, "random_state": 1}


def test_take_on_lists_and_frames():
    assert take([[1], [2], [3]], np.array([2])).tolist() == [[3]]
    frame = pd.DataFrame({"a": [1, 2, 3]}, index=[10, 20, 30])
    assert take(frame, np.array([0, 2]))["a"].tolist() == [1, 3]
