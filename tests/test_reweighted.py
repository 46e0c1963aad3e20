"""ReweightedClassifier: L2RW's row weights handed to any scikit-learn classifier."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_l2rw import L2RWClassifier, ReweightedClassifier
from sk_l2rw.diagnostics import relative_weights
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels, split_clean
from sk_l2rw.reweighted import row_weights

SMALL_NET = dict(criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                 lr=3e-3, max_epochs=6, batch_size=64, verbose=0, random_state=0)


def _digits_problem(n_train=900, seed=0):
    X, y = load_digits(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    X_rest, y_rest, Xc, yc = split_clean(X_train, y_train, 5, random_state=seed)
    y_noisy, flipped = flip_labels(y_rest, 0.4, "background", background_class=0,
                                   random_state=seed)
    return X_rest, y_noisy, flipped, Xc, yc, X_test, y_test


class SpyLogistic(LogisticRegression):
    """Records the sample weights it was fitted with."""

    def fit(self, X, y, sample_weight=None):
        self.seen_weight_ = sample_weight
        self.seen_rows_ = len(X)
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def fitted():
    X, y, flipped, Xc, yc, X_test, y_test = _digits_problem()
    clf = ReweightedClassifier(HistGradientBoostingClassifier(max_iter=40, random_state=0),
                               random_state=0)
    clf.fit(X, y, X_val=Xc, y_val=yc)
    return clf, X, y, flipped, Xc, yc, X_test, y_test


class TestBehaviour:
    def test_flipped_rows_weigh_less(self, fitted):
        clf, X, y, flipped, *_ = fitted
        w = clf.sample_weight_
        assert w.shape == (len(X),) and (w >= 0).all()
        assert w[flipped].mean() < 0.3 * w[~flipped].mean()

    def test_beats_the_same_estimator_on_the_noisy_rows(self, fitted):
        clf, X, y, flipped, Xc, yc, X_test, y_test = fitted
        hgb = HistGradientBoostingClassifier(max_iter=40, random_state=0)
        hgb.fit(np.vstack([X, Xc]), np.concatenate([y, yc]))
        assert clf.score(X_test, y_test) > hgb.score(X_test, y_test) + 0.1

    def test_fitted_attributes(self, fitted):
        clf, X, *_ = fitted
        assert isinstance(clf.net_[-1], L2RWClassifier)
        assert isinstance(clf.net_[-1].module_, MLP)
        np.testing.assert_array_equal(clf.classes_, np.arange(10))
        assert clf.n_features_in_ == X.shape[1]
        proba = clf.predict_proba(X[:5])
        assert proba.shape == (5, 10)
        np.testing.assert_array_equal(clf.predict(X[:5]), clf.classes_[proba.argmax(1)])

    def test_row_weights_is_the_later_half_mean_relative_weight(self, fitted):
        clf = fitted[0]
        net = clf.net_
        n_epochs = len(net[-1].history)
        expected = relative_weights(net)[n_epochs - (n_epochs + 1) // 2:].mean(0)
        np.testing.assert_allclose(row_weights(net), expected)
        np.testing.assert_allclose(clf.sample_weight_, expected)
        assert row_weights(net).mean() == pytest.approx(1.0, abs=0.1)

    def test_estimator_gets_the_weights_and_the_clean_rows(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(600)
        net = L2RWClassifier(MLP, clean_class_weight={0: 2.0}, **SMALL_NET)
        clf = ReweightedClassifier(SpyLogistic(max_iter=200), net=net)
        clf.fit(X / 16, y, X_val=Xc / 16, y_val=yc)
        seen = clf.estimator_.seen_weight_
        assert clf.estimator_.seen_rows_ == len(X) + len(yc)
        np.testing.assert_allclose(seen[:len(X)], clf.sample_weight_)
        c = np.where(yc == 0, 2.0, 1.0)
        np.testing.assert_allclose(seen[len(X):], c / c.mean())

    def test_clean_class_weight_goes_to_the_default_net(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(400)
        clf = ReweightedClassifier(SpyLogistic(max_iter=300), clean_class_weight={3: 4.0},
                                   random_state=0)
        clf.fit(X / 16, y, X_val=Xc / 16, y_val=yc)
        assert clf.net_[-1].clean_class_weight == {3: 4.0}
        c = np.where(yc == 3, 4.0, 1.0)
        np.testing.assert_allclose(clf.estimator_.seen_weight_[len(X):], c / c.mean())

    def test_clean_set_from_the_net(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(600)
        net = L2RWClassifier(MLP, Xc / 16, yc, **SMALL_NET)
        clf = ReweightedClassifier(SpyLogistic(max_iter=200), net=net).fit(X / 16, y)
        assert clf.estimator_.seen_rows_ == len(X) + len(yc)
        # the given net is left as it was
        assert net.clean_X is not None and not hasattr(net, "module_")

    def test_pipeline_net_transforms_the_clean_set(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(600)
        seen = []

        def record(A):
            seen.append(len(A))
            return A / 16

        net = make_pipeline(FunctionTransformer(record), L2RWClassifier(MLP, **SMALL_NET))
        clf = ReweightedClassifier(SpyLogistic(max_iter=200), net=net)
        clf.fit(X, y, X_val=Xc, y_val=yc)
        assert seen == [len(X), len(yc)]
        assert clf.net_[-1].history[-1, "clean_loss"] < 2.3

    def test_dataframe_and_string_labels(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(600)
        names = np.array(list("abcdefghij"))
        columns = [f"px{i}" for i in range(X.shape[1])]
        clf = ReweightedClassifier(HistGradientBoostingClassifier(max_iter=10),
                                   random_state=0)
        clf.fit(pd.DataFrame(X, columns=columns), names[y],
                X_val=pd.DataFrame(Xc, columns=columns), y_val=names[yc])
        np.testing.assert_array_equal(clf.classes_, names)
        np.testing.assert_array_equal(clf.feature_names_in_, columns)
        assert set(clf.predict(pd.DataFrame(X[:20], columns=columns))) <= set(names)

    def test_reproducible_with_random_state(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(400)
        make = lambda: ReweightedClassifier(LogisticRegression(max_iter=100),
                                            random_state=3)
        a = make().fit(X, y, X_val=Xc, y_val=yc)
        b = make().fit(X, y, X_val=Xc, y_val=yc)
        np.testing.assert_array_equal(a.sample_weight_, b.sample_weight_)


class TestCitizenship:
    def test_clone_keeps_parameters(self):
        net = L2RWClassifier(MLP, **SMALL_NET)
        clf = ReweightedClassifier(LogisticRegression(C=0.5), net=net, random_state=4)
        copy = clone(clf)
        assert copy.get_params()["estimator__C"] == 0.5
        assert copy.get_params()["net__lr"] == SMALL_NET["lr"]
        assert copy.random_state == 4

    def test_pickle_round_trip(self, fitted):
        clf, X, *_ = fitted
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict_proba(X[:50]), clf.predict_proba(X[:50]))

    def test_grid_search_over_estimator_and_net_parameters(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(500)
        net = L2RWClassifier(MLP, **dict(SMALL_NET, max_epochs=2))
        clf = ReweightedClassifier(LogisticRegression(max_iter=100), net=net)
        search = GridSearchCV(clf, {"estimator__C": [0.1, 1.0],
                                    "net__module__hidden_layer_sizes": [(16,), (32,)]},
                              cv=2)
        search.fit(X / 16, y, X_val=Xc / 16, y_val=yc)
        assert set(search.cv_results_["param_estimator__C"]) == {0.1, 1.0}
        best = search.best_estimator_
        assert best.net_.module_.layers[0].out_features in (16, 32)

    def test_inside_a_pipeline(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(500)
        scaler = StandardScaler().fit(X)
        pipe = make_pipeline(StandardScaler(),
                             ReweightedClassifier(LogisticRegression(max_iter=100),
                                                  random_state=0))
        pipe.fit(X, y, reweightedclassifier__X_val=scaler.transform(Xc),
                 reweightedclassifier__y_val=yc)
        assert pipe.score(X, y) > 0.3


class TestBadInput:
    @pytest.mark.parametrize("estimator, match", [
        (LinearRegression(), "needs a classifier"),
        (KNeighborsClassifier(), "does not take sample_weight"),
        (make_pipeline(StandardScaler(), KNeighborsClassifier()),
         "does not take sample_weight"),
    ])
    def test_estimator_is_checked_before_any_fit(self, estimator, match):
        X, y, flipped, Xc, yc, *_ = _digits_problem(300)
        net = L2RWClassifier(MLP, **SMALL_NET)
        clf = ReweightedClassifier(estimator, net=net)
        with pytest.raises(TypeError, match=match):
            clf.fit(X, y, X_val=Xc, y_val=yc)
        assert not hasattr(clf, "net_") and not hasattr(net, "module_")

    def test_net_must_be_l2rw(self):
        X, y, flipped, Xc, yc, *_ = _digits_problem(300)
        clf = ReweightedClassifier(LogisticRegression(), net=LogisticRegression())
        with pytest.raises(TypeError, match="net must be an L2RWClassifier"):
            clf.fit(X, y, X_val=Xc, y_val=yc)

    def test_clean_set_required(self):
        X, y, *_ = _digits_problem(300)
        with pytest.raises(ValueError, match="needs a clean set"):
            ReweightedClassifier(LogisticRegression()).fit(X, y)
        with pytest.raises(ValueError, match="only X_val was given"):
            ReweightedClassifier(LogisticRegression()).fit(X, y, X_val=X[:5])

    def test_failed_refit_keeps_the_fitted_model(self, fitted):
        clf, X, y, flipped, Xc, yc, *_ = fitted
        clf = pickle.loads(pickle.dumps(clf))
        before = clf.predict_proba(X[:30])
        weights = clf.sample_weight_.copy()
        with pytest.raises(ValueError, match=r"labels \[42\]"):
            clf.fit(X, y, X_val=Xc, y_val=np.r_[yc[:-1], 42])
        with pytest.raises(ValueError, match="10 features"):
            clf.fit(X, y, X_val=Xc[:, :10], y_val=yc)
        np.testing.assert_array_equal(clf.predict_proba(X[:30]), before)
        np.testing.assert_array_equal(clf.sample_weight_, weights)
