"""Bad input: a clear error before any training, and a fitted model left as it was."""

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import MLP, assert_unchanged, fitted_state, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor
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


NAN = float("nan")

# (parameter, bad value, exception, message pattern): skorch's parameters, which
# skorch checks only where training uses them.
BAD_PARAMETERS = [
    ("batch_size", NAN, TypeError, r"batch_size must be a positive int, or -1 .*got nan"),
    ("batch_size", 1.5, TypeError, r"batch_size must be a positive int.*got 1.5"),
    ("batch_size", {5: 1.0}, TypeError, r"batch_size must be a positive int.*got \{5: 1.0\}"),
    ("batch_size", 0, ValueError, r"batch_size must be a positive int.*got 0"),
    ("batch_size", -2, ValueError, r"batch_size must be a positive int.*got -2"),
    ("batch_size", True, TypeError, r"batch_size must be a positive int.*got True"),
    ("max_epochs", None, TypeError, r"max_epochs must be a non-negative int; got None"),
    ("max_epochs", 1.5, TypeError, r"max_epochs must be a non-negative int; got 1.5"),
    ("max_epochs", NAN, TypeError, r"max_epochs must be a non-negative int; got nan"),
    ("max_epochs", -1, ValueError, r"max_epochs must be a non-negative int; got -1"),
    ("lr", "0.1", TypeError, r"lr must be a number; got '0.1'"),
    ("lr", NAN, ValueError, r"lr must be a finite number above 0; got nan"),
    ("lr", 0.0, ValueError, r"lr must be a finite number above 0; got 0.0"),
    ("lr", -0.1, ValueError, r"lr must be a finite number above 0; got -0.1"),
    ("optimizer__lr", float("inf"), ValueError, r"optimizer__lr must be a finite number"),
    ("iterator_train__batch_size", 0, ValueError,
     r"iterator_train__batch_size must be a positive int.*got 0"),
    ("iterator_valid__batch_size", 1.5, TypeError,
     r"iterator_valid__batch_size must be a positive int.*got 1.5"),
    ("iterator_train__shuffle", "yes", TypeError,
     r"iterator_train__shuffle must be True or False; got 'yes'"),
    ("warm_start", "yes", TypeError, r"warm_start must be True or False; got 'yes'"),
    ("compile", 1, TypeError, r"compile must be True or False; got 1"),
    ("verbose", -1, ValueError, r"verbose must be a non-negative int; got -1"),
    ("train_split", 3, TypeError, r"train_split must be None or a callable"),
    ("random_state", -1, ValueError, r"random_state must be a non-negative int; got -1"),
    ("random_state", 1.5, TypeError, r"random_state must be None, a non-negative int"),
    ("device", None, TypeError, r"device must be 'auto', a str"),
    ("device", "gpu", ValueError, r"device='gpu' is not a device torch knows"),
    ("predict_nonlinearity", 3, TypeError, r"predict_nonlinearity must be 'auto', None"),
]


class TestSkorchParameters:
    """skorch's own parameters are checked before anything changes."""

    @pytest.mark.parametrize("method", ["fit", "partial_fit"])
    @pytest.mark.parametrize("name, value, error, match", BAD_PARAMETERS,
                             ids=[f"{c[0]}={c[1]!r}" for c in BAD_PARAMETERS])
    def test_refused_before_training(self, fitted, method, name, value, error, match):
        before = fitted_state(fitted, X)
        missing = object()
        old = vars(fitted).get(name, missing)
        # Written into __dict__, where get_params reads it: skorch's set_params
        # refuses iterator_* parameters on an initialized net, and its __delattr__
        # would rebuild prefixes_.
        vars(fitted)[name] = value
        try:
            with pytest.raises(error, match=match):
                getattr(fitted, method)(XT, YT, X_val=XC, y_val=YC)
        finally:
            if old is missing:
                vars(fitted).pop(name)
            else:
                vars(fitted)[name] = old
        assert_unchanged(fitted, before, X)

    def test_a_typo_in_a_parameter_name_is_refused(self):
        # skorch's own check of the names, which the estimators once hid.
        net = L2RWClassifier(MLP, XC, YC, max_epochs=1, verbose=0,
                             iterator_train_shuffle=False)
        with pytest.raises(ValueError, match="did you mean iterator_train__shuffle"):
            net.fit(XT, YT)

    @pytest.mark.parametrize("name, value", [
        ("batch_size", -1), ("batch_size", np.int64(16)), ("max_epochs", 0),
        ("lr", np.float32(0.05)), ("random_state", np.random.RandomState(0)),
        ("device", "cpu"), ("train_split", False), ("verbose", False),
    ])
    def test_good_values_pass(self, name, value):
        net = L2RWClassifier(MLP, XC, YC, **{**dict(max_epochs=1, verbose=0), name: value})
        net.fit(XT, YT)
        assert net.predict(XC).shape == (20,)


class TestPredictRowShape:
    """Rows of another shape than the fit's are refused before the module runs."""

    @pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
    def test_extra_axis(self, fitted, method):
        args = (X[:, :, None],) + ((Y,) if method == "score" else ())
        with pytest.raises(ValueError, match=r"X has rows of shape \(10, 1\), but "
                                             r"L2RWClassifier was fitted on rows of "
                                             r"shape \(10,\)"):
            getattr(fitted, method)(*args)

    def test_same_features_other_layout(self, fitted):
        with pytest.raises(ValueError, match=r"rows of shape \(2, 5\)"):
            fitted.predict(X.reshape(len(X), 2, 5))

    def test_sparse_of_other_width(self, fitted):
        with pytest.raises(ValueError, match="X has 4 features, but L2RWClassifier is "
                                             "expecting 10"):
            fitted.predict(sp.csr_matrix(X[:, :4]))

    def test_partial_fit_with_an_extra_axis(self, fitted):
        before = fitted_state(fitted, X)
        with pytest.raises(ValueError, match=r"X has rows of shape \(10, 1\)"):
            fitted.partial_fit(XT[:, :, None], YT, X_val=XC[:, :, None], y_val=YC)
        assert_unchanged(fitted, before, X)

    def test_dict_inputs(self):
        from test_dict_input import KW, NumCat, dict_problem

        Xd, y, _, Xc, yc, _ = dict_problem(120)
        net = L2RWClassifier(NumCat, Xc, yc, **dict(KW, max_epochs=1)).fit(Xd, y)
        with pytest.raises(ValueError, match=r"X has a dict of inputs with rows of shapes "
                                             r"\{'num': \(4, 1\), 'cat': \(\)\}, but "
                                             r"L2RWClassifier was fitted on a dict of "
                                             r"inputs with rows of shapes \{'num': \(4,\)"):
            net.predict(dict(Xd, num=Xd["num"][:, :, None]))
        with pytest.raises(ValueError, match=r"X has rows of shape \(4,\), but "
                                             r"L2RWClassifier was fitted on a dict"):
            net.predict(Xd["num"])

    def test_regressor(self):
        y = XT[:, 0] - XT[:, 1]
        net = L2RWRegressor(MLP, XC, XC[:, 0] - XC[:, 1], module__n_classes=1,
                            module__logits=True, max_epochs=1, verbose=0).fit(XT, y)
        with pytest.raises(ValueError, match=r"X has rows of shape \(10, 1\), but "
                                             r"L2RWRegressor was fitted on rows of shape"):
            net.score(X[:, :, None], X[:, 0])


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
