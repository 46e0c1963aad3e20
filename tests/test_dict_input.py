"""Dict X (skorch's multi-input form): validation, the batch path, every computation."""

import copy

import numpy as np
import pytest
import torch
from skorch.helper import SliceDict
from sklearn.model_selection import GridSearchCV, cross_validate
from torch import nn

from sk_l2rw import L2RWClassifier
from sk_l2rw.noise import flip_labels


class NumCat(nn.Module):
    """forward(num, cat): numeric features next to embedded category codes."""

    def __init__(self, n_numeric=4, n_levels=6, n_classes=3, width=16):
        super().__init__()
        self.embed = nn.Embedding(n_levels, 3)
        self.hidden = nn.Linear(n_numeric + 3, width)
        self.out = nn.Linear(width, n_classes)

    def forward(self, num, cat):
        h = torch.cat([num, self.embed(cat)], dim=1)
        return self.out(torch.relu(self.hidden(h)))


def dict_problem(n=400, seed=0):
    rng = np.random.RandomState(seed)
    cat = rng.randint(6, size=n)
    num = rng.normal(size=(n, 4)).astype(np.float32)
    y = (cat % 3 + (num[:, 0] > 1)) % 3
    X = {"num": num, "cat": cat}
    clean = {k: v[:40] for k, v in X.items()}
    train = {k: v[40:] for k, v in X.items()}
    y_noisy, flipped = flip_labels(y[40:], 0.4, "background", background_class=0,
                                   random_state=seed)
    return train, y_noisy, flipped, clean, y[:40], y[40:]


KW = dict(criterion=nn.CrossEntropyLoss, lr=0.05, max_epochs=6, batch_size=64,
          verbose=0, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    X, y, flipped, Xc, yc, y_true = dict_problem()
    net = L2RWClassifier(NumCat, Xc, yc, **KW).fit(X, y)
    return net, X, y, flipped, Xc, yc, y_true


class TestFitAndPredict:
    def test_fits_predicts_and_weighs(self, fitted):
        net, X, y, flipped, Xc, yc, y_true = fitted
        assert net.meta_gradient_ == "ghost"
        assert net.sample_weights_.shape == (6, len(y))
        w = np.nanmean(net.sample_weights_, axis=0)
        assert w[flipped].mean() < w[~flipped].mean()
        assert net.predict_proba(X).shape == (len(y), 3)
        assert (net.predict(X) == y_true).mean() > 0.5

    def test_integer_codes_reach_the_module_as_integers(self, fitted):
        net, X, *_ = fitted
        seen = []
        handle = net.module_.embed.register_forward_hook(
            lambda mod, inputs, out: seen.append(inputs[0].dtype))
        try:
            net.predict(X)
        finally:
            handle.remove()
        assert seen and all(dtype == torch.int64 for dtype in seen)

    @pytest.mark.parametrize("method", ["ghost", "jvp"])
    def test_same_weights_as_reference(self, method):
        X, y, flipped, Xc, yc, _ = dict_problem(200)
        kw = dict(KW, max_epochs=2, lr=0.01, module__n_classes=3)
        ref = L2RWClassifier(NumCat, Xc, yc, meta_gradient="reference", **kw).fit(X, y)
        got = L2RWClassifier(NumCat, Xc, yc, meta_gradient=method, **kw).fit(X, y)
        np.testing.assert_allclose(got.sample_weights_, ref.sample_weights_, rtol=1e-4,
                                   atol=1e-7)

    def test_clean_batches_smaller_than_the_clean_set(self):
        X, y, flipped, Xc, yc, _ = dict_problem(200)
        kw = dict(KW, max_epochs=2, clean_batch_size=16)
        ref = L2RWClassifier(NumCat, Xc, yc, meta_gradient="reference", **kw).fit(X, y)
        got = L2RWClassifier(NumCat, Xc, yc, **kw).fit(X, y)
        np.testing.assert_allclose(got.sample_weights_, ref.sample_weights_, rtol=1e-4,
                                   atol=1e-7)

    def test_torch_tensors_as_values(self):
        X, y, flipped, Xc, yc, _ = dict_problem(200)
        Xt = {k: torch.as_tensor(v) for k, v in X.items()}
        net = L2RWClassifier(NumCat, Xc, yc, **dict(KW, max_epochs=1)).fit(Xt, y)
        assert net.predict(Xt).shape == (len(y),)


class TestSearch:
    def test_grid_search_and_cross_validate_on_slice_dict(self):
        X, y, flipped, Xc, yc, _ = dict_problem(300)
        net = L2RWClassifier(NumCat, Xc, yc, **dict(KW, max_epochs=2))
        search = GridSearchCV(net, {"lr": [0.01, 0.05]}, cv=2, error_score="raise")
        search.fit(SliceDict(**X), y)
        assert len(search.cv_results_["params"]) == 2
        result = cross_validate(net, SliceDict(**X), y, cv=2, error_score="raise")
        assert len(result["test_score"]) == 2


class TestBadInput:
    @pytest.mark.parametrize("change, match", [
        (lambda X: dict(X, num=X["num"][:-1]), "differ in length"),
        (lambda X: dict(X, num=np.where(X["num"] > 2, np.nan, X["num"])),
         r"X\['num'\] contains NaN"),
        (lambda X: dict(X, cat=X["cat"].astype(str)), r"X\['cat'\] holds values of dtype"),
        (lambda X: {}, "empty dict"),
    ])
    def test_training_dict(self, fitted, change, match):
        net, X, y, *_ = fitted
        net = copy.deepcopy(net)
        before = net.predict_proba(X)
        with pytest.raises(ValueError, match=match):
            net.fit(change(X), y)
        np.testing.assert_array_equal(net.predict_proba(X), before)

    def test_clean_set_with_other_keys(self, fitted):
        net, X, y, flipped, Xc, yc, _ = fitted
        net = copy.deepcopy(net)
        with pytest.raises(ValueError, match=r"missing \['cat'\]; extra \['kind'\]"):
            net.fit(X, y, X_val={"num": Xc["num"], "kind": Xc["cat"]}, y_val=yc)
        with pytest.raises(ValueError, match="X is a dict but the clean set X_val is not"):
            net.fit(X, y, X_val=Xc["num"], y_val=yc)

    def test_predict_with_other_keys(self, fitted):
        net, X, *_ = fitted
        with pytest.raises(ValueError, match=r"missing \['cat'\]"):
            net.predict({"num": X["num"]})
