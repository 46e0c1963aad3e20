"""Categorical columns of a DataFrame: codes learned at fit, embedded by the MLP."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_l2rw import L2RWClassifier, L2RWRegressor, ReweightedClassifier
from sk_l2rw.categorical import (MISSING, UNKNOWN, categorical_columns, encode_frame,
                                 learn_levels)
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels


def frame_problem(n=600, seed=0):
    """The label is the colour's parity XOR the sign of a numeric column: a model
    must use the categories to do better than 75%."""
    rng = np.random.RandomState(seed)
    colours = np.array(["red", "green", "blue", "violet", "amber"], dtype=object)
    colour = colours[rng.randint(5, size=n)]
    colour[rng.rand(n) < 0.05] = None
    df = pd.DataFrame({
        "a": rng.randn(n).astype(np.float32),
        "colour": colour,
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
        "b": rng.randn(n).astype(np.float32),
    })
    odd = pd.Series(colour).isin(["red", "blue", "amber"]).to_numpy()
    y = (odd ^ (df["a"].to_numpy() > 0)).astype(np.int64)
    y_noisy, flipped = flip_labels(y[60:], 0.4, "background", background_class=0,
                                   random_state=seed)
    return df.iloc[60:].reset_index(drop=True), y_noisy, flipped, df.iloc[:60], y[:60], y[60:]


KW = dict(criterion=nn.CrossEntropyLoss, lr=0.01, max_epochs=30, batch_size=64, verbose=0,
          random_state=0, optimizer=torch.optim.Adam, module__hidden_layer_sizes=(32,))


@pytest.fixture(scope="module")
def fitted():
    X, y, flipped, Xc, yc, y_true = frame_problem()
    net = L2RWClassifier(MLP, Xc, yc, **KW).fit(X, y)
    return net, X, y, flipped, Xc, yc, y_true


class TestCodes:
    def test_columns_from_dtype_and_by_name(self):
        X = frame_problem(100)[0].assign(code=np.arange(40))
        assert categorical_columns(X, "from_dtype") == ["colour", "size"]
        assert categorical_columns(X, ["code", "colour"]) == ["colour", "code"]
        assert categorical_columns(X, None) == []
        assert categorical_columns(X.to_numpy(), "from_dtype") == []
        with pytest.raises(ValueError, match=r"names columns \['shape'\] that X does not"):
            categorical_columns(X, ["shape"])

    def test_missing_unknown_and_learned_levels(self):
        X = pd.DataFrame({"c": ["b", "a", None, "b"], "x": [1.0, 2.0, 3.0, 4.0]})
        levels = learn_levels(X, ["c"])
        np.testing.assert_array_equal(levels["c"], np.array(["a", "b"], dtype=object))
        new = pd.DataFrame({"c": ["a", "z", np.nan, "b"], "x": [0.0, 0.0, 0.0, 0.0]})
        out = encode_frame(new, levels, dtype=np.float32)
        assert out["X"].dtype == np.float32 and out["X"].shape == (4, 1)
        assert out["categories"].dtype == np.int64
        np.testing.assert_array_equal(out["categories"][:, 0], [2, UNKNOWN, MISSING, 3])

    def test_too_many_levels_need_an_explicit_setting(self):
        X = pd.DataFrame({"id": [f"user{i}" for i in range(10_001)], "x": 0.0})
        with pytest.raises(ValueError, match=r"'id' has 10,001 levels .* name it in "
                                             "categorical_features"):
            learn_levels(X, ["id"])
        assert len(learn_levels(X, ["id"], explicit=["id"])["id"]) == 10_001


class TestFitAndPredict:
    def test_fits_embeds_and_weighs(self, fitted):
        net, X, y, flipped, Xc, yc, y_true = fitted
        assert net.meta_gradient_ == "ghost"
        assert list(net.categories_) == ["colour", "size"]
        assert net.n_features_in_ == 4
        np.testing.assert_array_equal(net.feature_names_in_, ["a", "colour", "size", "b"])
        assert [e.num_embeddings for e in net.module_.embeddings] == [7, 5]
        w = np.nanmean(net.sample_weights_, axis=0)
        assert w[flipped].mean() < 0.7 * w[~flipped].mean()
        # above what the numeric columns alone allow (75%)
        assert (net.predict(X) == y_true).mean() > 0.85

    def test_unseen_and_missing_levels_at_predict(self, fitted):
        net, X, *_ = fitted
        new = X.iloc[:4].copy()
        new["colour"] = ["ultraviolet", None, "red", "red"]
        proba = net.predict_proba(new)
        assert proba.shape == (4, 2) and np.all(np.isfinite(proba))

    @pytest.mark.parametrize("method", ["ghost", "jvp"])
    def test_same_weights_as_reference(self, method):
        X, y, flipped, Xc, yc, _ = frame_problem(200)
        kw = dict(KW, max_epochs=2, clean_batch_size=16)
        ref = L2RWClassifier(MLP, Xc, yc, meta_gradient="reference", **kw).fit(X, y)
        got = L2RWClassifier(MLP, Xc, yc, meta_gradient=method, **kw).fit(X, y)
        np.testing.assert_allclose(got.sample_weights_, ref.sample_weights_, rtol=1e-4,
                                   atol=1e-7)

    def test_regressor(self):
        X, _, _, Xc, _, _ = frame_problem(200)
        target = X["a"].to_numpy() + (X["size"] == "L").to_numpy()
        target_c = Xc["a"].to_numpy() + (Xc["size"] == "L").to_numpy()
        net = L2RWRegressor(MLP, Xc, target_c.astype(np.float32), lr=0.01, max_epochs=3,
                            optimizer=torch.optim.Adam, verbose=0, random_state=0)
        net.fit(X, target.astype(np.float32))
        assert list(net.categories_) == ["colour", "size"]
        assert net.predict(X).shape == (len(X),)

    def test_arrays_are_unaffected(self):
        X, y, flipped, Xc, yc, _ = frame_problem(200)
        numeric = X[["a", "b"]].to_numpy()
        net = L2RWClassifier(MLP, Xc[["a", "b"]].to_numpy(), yc, **dict(KW, max_epochs=1))
        net.fit(numeric, y)
        assert not hasattr(net, "categories_") and len(net.module_.embeddings) == 0

    def test_bool_columns_are_numbers_with_or_without_categories(self):
        # Found by benchmarks/fuzz.py: a frame of numbers and bools was refused
        # ("non-numeric columns") unless it also had a categorical column.
        X, y, flipped, Xc, yc, _ = frame_problem(200)
        kw = dict(KW, max_epochs=1)
        flags = X[["a", "b"]].assign(big=X["a"] > 1)
        net = L2RWClassifier(MLP, Xc[["a", "b"]].assign(big=Xc["a"] > 1), yc, **kw)
        proba = net.fit(flags, y).predict_proba(flags)
        as_floats = flags.astype(np.float32)
        net = L2RWClassifier(MLP, Xc[["a", "b"]].assign(big=Xc["a"] > 1).astype(
            np.float32), yc, **kw)
        np.testing.assert_array_equal(net.fit(as_floats, y).predict_proba(as_floats),
                                      proba)
        net = L2RWClassifier(MLP, Xc.assign(big=Xc["a"] > 1), yc, **kw)
        net.fit(X.assign(big=X["a"] > 1), y)
        assert list(net.categories_) == ["colour", "size"]

    def test_refit_on_an_array_forgets_the_categories(self, fitted):
        net, X, y, flipped, Xc, yc, _ = fitted
        net = clone(net).fit(X, y)
        assert hasattr(net, "categories_")
        net.set_params(clean_X=Xc[["a", "b"]].to_numpy()).fit(X[["a", "b"]].to_numpy(), y)
        assert not hasattr(net, "categories_")

    def test_pickle_keeps_the_codes(self, fitted):
        net, X, *_ = fitted
        again = pickle.loads(pickle.dumps(net))
        np.testing.assert_allclose(again.predict_proba(X), net.predict_proba(X))


class TestCitizenship:
    def test_pipeline_keeps_categories_for_the_net(self):
        X, y, flipped, Xc, yc, y_true = frame_problem(300)
        scale = ColumnTransformer(
            [("num", StandardScaler(), make_column_selector(dtype_include="number"))],
            remainder="passthrough", verbose_feature_names_out=False)
        scale.set_output(transform="pandas")
        pipe = make_pipeline(scale, L2RWClassifier(MLP, **dict(KW, max_epochs=2)))
        with sklearn.config_context(enable_metadata_routing=True):
            pipe[-1].set_fit_request(X_val=True, y_val=True)
            pipe.set_params(transform_input=["X_val"])
            pipe.fit(X, y, X_val=Xc, y_val=yc)
        assert list(pipe[-1].categories_) == ["colour", "size"]
        assert pipe.predict(X).shape == (len(X),)

    def test_cross_validate(self):
        X, y, flipped, Xc, yc, _ = frame_problem(300)
        result = cross_validate(L2RWClassifier(MLP, Xc, yc, **dict(KW, max_epochs=2)),
                                X, y, cv=2, error_score="raise")
        assert len(result["test_score"]) == 2

    def test_reweighted_default_net_embeds(self):
        X, y, flipped, Xc, yc, y_true = frame_problem(300)
        X = X.assign(size=X["size"].astype("category"))
        Xc = Xc.assign(size=Xc["size"].astype("category"))
        hgb = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
        model = ReweightedClassifier(hgb, random_state=0)
        model.fit(X.assign(colour=X["colour"].astype("category")), y,
                  X_val=Xc.assign(colour=Xc["colour"].astype("category")), y_val=yc)
        net = model.net_[-1] if hasattr(model.net_, "steps") else model.net_
        assert list(net.categories_) == ["colour", "size"]
        assert model.sample_weight_.shape == (len(y),)


class TestBadInput:
    def test_categorical_column_missing_at_predict(self, fitted):
        net, X, *_ = fitted
        with pytest.raises(ValueError, match="must be a DataFrame with the columns"):
            net.predict(X.drop(columns="colour"))
        with pytest.raises(ValueError, match="must be a DataFrame with the columns"):
            net.predict(X.to_numpy())

    def test_no_rows_at_predict(self, fitted):
        # Found by benchmarks/fuzz.py: numpy's "need at least one array to
        # concatenate" came out of predict.
        net, X, *_ = fitted
        with pytest.raises(ValueError, match="^X has no rows$"):
            net.predict_proba(X.iloc[:0])

    @pytest.mark.parametrize("renamed", ["colour", "a"])
    def test_columns_not_named_by_strings(self, fitted, renamed):
        # Found by the hypothesis test of malformed frames (test_robustness): a
        # categorical column named 0 raised KeyError '0' in fit; a numeric one
        # gave an estimator that refused every frame at predict.
        net, X, y, flipped, Xc, yc, _ = fitted
        net = copy.deepcopy(net)
        before = net.predict_proba(X)
        with pytest.raises(ValueError, match=r"some names are not strings: \[0\]"):
            net.fit(X.rename(columns={renamed: 0}), y,
                    X_val=Xc.rename(columns={renamed: 0}), y_val=yc)
        np.testing.assert_array_equal(net.predict_proba(X), before)

    def test_clean_set_without_the_column(self, fitted):
        net, X, y, flipped, Xc, yc, _ = fitted
        net = copy.deepcopy(net)
        before = net.predict_proba(X)
        with pytest.raises(ValueError, match=r"the clean set X_val lacks the categorical "
                                             r"columns \['size'\]"):
            net.fit(X, y, X_val=Xc.drop(columns="size"), y_val=yc)
        np.testing.assert_array_equal(net.predict_proba(X), before)

    def test_identifier_column_is_refused_before_training(self, fitted):
        net, X, y, *_ = fitted
        net = copy.deepcopy(net)
        before = net.predict_proba(X)
        wide = pd.DataFrame({"a": np.zeros(10_500, np.float32),
                             "user": [f"u{i}" for i in range(10_500)]})
        with pytest.raises(ValueError, match=r"'user' has 10,500 levels"):
            net.fit(wide, np.arange(10_500) % 2)
        np.testing.assert_array_equal(net.predict_proba(X), before)

    def test_bad_setting(self):
        X, y, *_ = frame_problem(100)
        with pytest.raises(ValueError, match="categorical_features must be"):
            L2RWClassifier(MLP, categorical_features="auto", **KW).fit(X, y)
