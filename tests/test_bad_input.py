"""Bad input: a clear error before any training, and a fitted model left as it was."""

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier
from sk_l2rw.exceptions import MissingClassesWarning

X, Y = make_blobs_data(120)
XC, YC = X[:20], Y[:20]
XT, YT = X[20:], Y[20:]


def with_nan(a, value=np.nan):
    a = a.copy()
    a[3, 2] = value
    return a


def sparse_with_nan(a, value=np.nan):
    return sp.csr_matrix(with_nan(a, value))


# (name, constructor overrides, fit arguments, expected message pattern, exception)
CASES = [
    ("clean set with other width", {}, dict(X=XT, y=YT, X_val=XC[:, :7], y_val=YC),
     r"clean set X_val has rows of shape \(7,\) but X has rows of shape \(10,\)", ValueError),
    ("clean label unseen in y", {}, dict(X=XT, y=YT, X_val=XC, y_val=np.r_[YC[:-1], 9]),
     r"clean set y_val contains labels \[9\]", ValueError),
    ("clean X and y of different lengths", dict(clean_X=XC, clean_y=YC[:-3]),
     dict(X=XT, y=YT), r"clean_X has 20 rows but clean_y has 17", ValueError),
    ("empty clean set", {}, dict(X=XT, y=YT, X_val=XC[:0], y_val=YC[:0]),
     r"clean set \(X_val, y_val\) is empty", ValueError),
    ("NaN in X", {}, dict(X=with_nan(XT), y=YT, X_val=XC, y_val=YC), r"X contains NaN", ValueError),
    ("inf in X", {}, dict(X=with_nan(XT, np.inf), y=YT, X_val=XC, y_val=YC),
     r"X contains infinity", ValueError),
    ("NaN in clean set", dict(clean_X=with_nan(XC), clean_y=YC), dict(X=XT, y=YT),
     r"clean set clean_X contains NaN", ValueError),
    ("X and y of different lengths", {}, dict(X=XT, y=YT[:-1], X_val=XC, y_val=YC),
     r"X has 100 rows but y has 99", ValueError),
    ("clean_batch_size zero", dict(clean_batch_size=0), dict(X=XT, y=YT, X_val=XC, y_val=YC),
     r"clean_batch_size must be a positive int; got 0", ValueError),
    ("clean_batch_size negative", dict(clean_batch_size=-4),
     dict(X=XT, y=YT, X_val=XC, y_val=YC), r"clean_batch_size must be a positive", ValueError),
    ("unknown meta_gradient", dict(meta_gradient="hessian"),
     dict(X=XT, y=YT, X_val=XC, y_val=YC), r"meta_gradient must be one of .* got 'hessian'",
     ValueError),
    ("X_val without y_val", {}, dict(X=XT, y=YT, X_val=XC), r"only X_val was given", ValueError),
    ("y_val without X_val", {}, dict(X=XT, y=YT, y_val=YC), r"only y_val was given", ValueError),
    ("clean_X without clean_y", dict(clean_X=XC, clean_y=None), dict(X=XT, y=YT),
     r"only clean_X was given", ValueError),
    ("y with NaN", {}, dict(X=XT, y=np.r_[YT[:-1], np.nan], X_val=XC, y_val=YC),
     r"y contains NaN", ValueError),
    ("y is None", {}, dict(X=XT, y=None, X_val=XC, y_val=YC), r"requires y to be passed", ValueError),
    ("sparse X with NaN", {}, dict(X=sparse_with_nan(XT), y=YT, X_val=XC, y_val=YC),
     r"X \(sparse\) contains NaN or infinity, first at row 3, column 2", ValueError),
    # a DOK matrix is a dict subclass: it must not be taken for a dict of inputs
    ("sparse DOK X with NaN", {}, dict(X=sp.dok_matrix(sparse_with_nan(XT)), y=YT,
                                       X_val=XC, y_val=YC),
     r"X \(sparse\) contains NaN or infinity, first at row 3", ValueError),
    ("sparse clean set with infinity", {},
     dict(X=sp.csr_matrix(XT), y=YT, X_val=sparse_with_nan(XC, np.inf), y_val=YC),
     r"the clean set X_val \(sparse\) contains NaN or infinity", ValueError),
    ("3-D sparse X", {}, dict(X=sp.coo_array(np.ones((100, 2, 5))), y=YT, X_val=XC, y_val=YC),
     r"X is a sparse array of 3 dimensions", ValueError),
    ("strings in X", {}, dict(X=np.array([["a"] * 10] * 100), y=YT, X_val=XC, y_val=YC),
     r"X holds values that are not numbers", ValueError),
]


@pytest.fixture(scope="module")
def fitted():
    net = L2RWClassifier(MLP, XC, YC, max_epochs=2, lr=0.1, random_state=0, verbose=0)
    net.fit(XT, YT)
    return net


@pytest.mark.parametrize("name, params, fit_args, match, error", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_before_training(fitted, name, params, fit_args, match, error):
    before_pred = fitted.predict_proba(X)
    before_weights = fitted.sample_weights_.copy()
    before_history = len(fitted.history)
    old = {key: getattr(fitted, key) for key in params}
    fitted.set_params(**params)
    try:
        with pytest.raises(error, match=match):
            fitted.fit(**fit_args)
    finally:
        fitted.set_params(**old)
    np.testing.assert_array_equal(fitted.predict_proba(X), before_pred)
    np.testing.assert_array_equal(fitted.sample_weights_, before_weights)
    assert len(fitted.history) == before_history


def test_predict_with_wrong_width(fitted):
    with pytest.raises(ValueError, match="10 features"):
        fitted.predict(X[:, :4])


def test_clean_set_missing_classes_warns():
    net = L2RWClassifier(MLP, max_epochs=1, verbose=0)
    keep = YC != 2
    with pytest.warns(MissingClassesWarning, match=r"no rows of classes \[2\]"):
        net.fit(XT, YT, X_val=XC[keep], y_val=YC[keep])


class TestMetaEstimatorsThatReencodeY:
    """Meta-estimators that encode y hand L2RWClassifier codes while the clean set
    keeps its labels: a clear error that names the pattern, and a route that works."""

    def _problem(self):
        X, y = make_blobs_data(240)
        names = np.array(["ant", "bee", "cat"])
        return X[40:], names[y[40:]], X[:40], names[y[:40]]

    @staticmethod
    def _wrapped(wrap, net):
        from sklearn.ensemble import (BaggingClassifier, StackingClassifier,
                                      VotingClassifier)
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        return {"voting": lambda: VotingClassifier([("net", net)], voting="soft"),
                "stacking": lambda: StackingClassifier(
                    [("net", net)], final_estimator=LogisticRegression(), cv=2),
                "bagging": lambda: BaggingClassifier(net, n_estimators=2, random_state=0),
                "ovr": lambda: OneVsRestClassifier(net)}[wrap]()

    @pytest.mark.parametrize("wrap", ["voting", "stacking", "bagging"])
    def test_label_encoding_meta_estimators_work(self, wrap):
        from sk_l2rw.exceptions import EncodedLabelsWarning

        X, y, Xc, yc = self._problem()
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=2, verbose=0)
        model = self._wrapped(wrap, net)
        with pytest.warns(EncodedLabelsWarning, match="sorted order"):
            model.fit(X, y)
        assert set(model.predict(X)) <= {"ant", "bee", "cat"}

    def test_one_vs_rest_names_the_pattern(self):
        X, y, Xc, yc = self._problem()
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=1, verbose=0)
        with pytest.raises(ValueError, match="meta-estimator probably re-encoded y"):
            self._wrapped("ovr", net).fit(X, y)

    def test_clean_set_missing_a_class_is_not_guessed(self):
        from sklearn.ensemble import VotingClassifier

        X, y, Xc, yc = self._problem()
        keep = yc != "cat"
        net = L2RWClassifier(MLP, Xc[keep], yc[keep], max_epochs=1, verbose=0)
        with pytest.raises(ValueError, match="meta-estimator probably re-encoded y"):
            VotingClassifier([("net", net)]).fit(X, y)

    def test_encoding_first_works(self):
        from sklearn.ensemble import VotingClassifier
        from sklearn.preprocessing import LabelEncoder

        X, y, Xc, yc = self._problem()
        encoder = LabelEncoder().fit(y)
        net = L2RWClassifier(MLP, Xc, encoder.transform(yc), max_epochs=2, verbose=0)
        model = VotingClassifier([("net", net)], voting="soft").fit(X, encoder.transform(y))
        assert set(encoder.inverse_transform(model.predict(X))) <= {"ant", "bee", "cat"}

    def test_hint_only_next_to_training_codes(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, max_epochs=1, verbose=0)
        with pytest.raises(ValueError, match=r"labels \[7\]") as info:
            net.fit(X[20:], y[20:], X_val=X[:20], y_val=np.r_[y[:19], 7])
        assert "meta-estimator" in str(info.value)  # codes 0..2 next to a 7
        named = np.array(["a", "b", "c"])
        with pytest.raises(ValueError, match=r"labels \['z'\]") as info:
            net.fit(X[20:], named[y[20:]], X_val=X[:20], y_val=np.concatenate([named[y[:19]], ["z"]]))
        assert "meta-estimator" not in str(info.value)
