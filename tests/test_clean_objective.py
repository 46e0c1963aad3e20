"""The clean set's objective (clean_class_weight) and training on it (train_on_clean)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor
from sk_l2rw.validation import clean_class_weights

# Clean sets below are smaller than the batch: every step uses the whole clean set,
# so a class weight of 2 is exactly a clean set that holds those rows twice.
ONE_BATCH = dict(max_epochs=4, lr=0.1, batch_size=128, verbose=0, random_state=0)


def _data():
    X, y = make_blobs_data(230, seed=1)
    return X[30:], y[30:], X[:30], y[:30]


class TestCleanClassWeight:
    def test_class_weight_equals_repeated_clean_rows(self):
        X, y, Xc, yc = _data()
        weighted = L2RWClassifier(MLP, Xc, yc, clean_class_weight={2: 2.0, 0: 0.5},
                                  **ONE_BATCH).fit(X, y)
        # weight 2 for class 2 and 0.5 for class 0 = class 2 four times, class 1 twice,
        # class 0 once (only ratios count)
        repeats = np.select([yc == 2, yc == 1], [4, 2], 1)
        rows = np.repeat(np.arange(len(yc)), repeats)
        repeated = L2RWClassifier(MLP, Xc[rows], yc[rows], **ONE_BATCH).fit(X, y)
        np.testing.assert_allclose(weighted.sample_weights_, repeated.sample_weights_,
                                   rtol=1e-4, atol=1e-7)
        plain = L2RWClassifier(MLP, Xc, yc, **ONE_BATCH).fit(X, y)
        assert not np.allclose(plain.sample_weights_, weighted.sample_weights_,
                               rtol=1e-3, atol=1e-6)

    def test_balanced_is_sklearn_balanced(self):
        X, y, Xc, yc = _data()
        counts = np.bincount(yc)
        by_hand = {k: len(yc) / (3 * counts[k]) for k in range(3)}
        a = L2RWClassifier(MLP, Xc, yc, clean_class_weight="balanced", **ONE_BATCH).fit(X, y)
        b = L2RWClassifier(MLP, Xc, yc, clean_class_weight=by_hand, **ONE_BATCH).fit(X, y)
        np.testing.assert_allclose(a.sample_weights_, b.sample_weights_, rtol=1e-5,
                                   atol=1e-8)

    def test_clean_loss_history_is_the_weighted_mean(self):
        X, y, Xc, yc = _data()
        weight = {0: 3.0}
        net = L2RWClassifier(MLP, Xc, yc, clean_class_weight=weight, **ONE_BATCH).fit(X, y)
        proba = net.predict_proba(Xc)
        losses = -np.log(proba[np.arange(len(yc)), yc] + np.finfo(np.float32).eps)
        c = np.where(yc == 0, 3.0, 1.0)
        assert net.history[-1, "clean_loss"] == pytest.approx(
            (c * losses).sum() / c.sum(), rel=1e-4)

    def test_string_labels(self):
        X, y, Xc, yc = _data()
        names = np.array(["ant", "bee", "cat"])
        net = L2RWClassifier(MLP, Xc, names[yc], clean_class_weight={"cat": 2.0},
                             **ONE_BATCH).fit(X, names[y])
        assert set(net.predict(Xc)) <= set(names)

    def test_weights_have_mean_one(self):
        yc = np.array([0, 0, 0, 1])
        w = clean_class_weights({1: 3.0}, yc)
        np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0])
        np.testing.assert_allclose(clean_class_weights("balanced", yc),
                                   [2 / 3, 2 / 3, 2 / 3, 2.0])
        assert clean_class_weights(None, yc) is None

    @pytest.mark.parametrize("weight, error, match", [
        ({7: 1.0}, ValueError, r"labels \[7\] that the clean set does not contain"),
        ({0: -1.0}, ValueError, r"clean_class_weight\[0\] is -1.0"),
        ({0: float("inf")}, ValueError, "finite and non-negative"),
        ({0: float("nan")}, ValueError, "finite and non-negative"),
        ({0: "high"}, TypeError, "must be a number"),
        ({0: 0.0, 1: 0.0, 2: 0.0}, ValueError, "every row of the clean set weight 0"),
        ("balance", ValueError, "'balanced' or a dict"),
        ([1.0, 2.0], TypeError, "'balanced' or a dict"),
    ])
    def test_bad_weights_raise_before_training_and_keep_the_fit(self, weight, error, match):
        X, y, Xc, yc = _data()
        net = L2RWClassifier(MLP, Xc, yc, **ONE_BATCH).fit(X, y)
        before = copy.deepcopy(net.module_.state_dict())
        history = len(net.history)
        net.set_params(clean_class_weight=weight)
        with pytest.raises(error, match=match):
            net.fit(X, y)
        assert len(net.history) == history
        for key, value in net.module_.state_dict().items():
            torch.testing.assert_close(value, before[key])


class TestTrainOnClean:
    def _first_step(self, train_on_clean):
        """One SGD step on one batch of all rows; the initial module for reference."""
        X, y, Xc, yc = _data()
        net = L2RWClassifier(MLP, Xc, yc, train_on_clean=train_on_clean,
                             optimizer=torch.optim.SGD, lr=0.5, max_epochs=1,
                             batch_size=len(X), verbose=0, random_state=0)
        net.initialize()
        start = copy.deepcopy(net.module_)
        net.partial_fit(X, y)
        return net, start, (X, y, Xc, yc)

    def test_weights_are_the_papers_and_the_update_adds_the_clean_rows(self):
        plain, start, (X, y, Xc, yc) = self._first_step(False)
        mixed, start_again, _ = self._first_step(True)
        np.testing.assert_allclose(mixed.sample_weights_, plain.sample_weights_,
                                   rtol=1e-6)
        for a, b in zip(start.parameters(), start_again.parameters()):
            torch.testing.assert_close(a, b)
        # theta_mixed - theta_plain = -lr * (n_clean / n_train) * grad mean clean loss
        share = len(yc) / len(y)
        device = next(start.parameters()).device
        out = start(torch.as_tensor(Xc, device=device))
        clean_loss = F.nll_loss(torch.log(out + torch.finfo(out.dtype).eps),
                                torch.as_tensor(yc, device=device))
        grads = torch.autograd.grad(clean_loss, list(start.parameters()))
        for p_mixed, p_plain, g in zip(mixed.module_.parameters(),
                                       plain.module_.parameters(), grads):
            torch.testing.assert_close(p_mixed - p_plain, -0.5 * share * g,
                                       rtol=1e-3, atol=1e-6)

    def test_trains_on_clean_rows_in_every_computation(self):
        X, y, Xc, yc = _data()
        results = {}
        for method in ("ghost", "jvp", "reference"):
            net = L2RWClassifier(MLP, Xc, yc, train_on_clean=True, meta_gradient=method,
                                 **ONE_BATCH).fit(X, y)
            results[method] = net.sample_weights_
        np.testing.assert_allclose(results["ghost"], results["reference"], rtol=1e-3,
                                   atol=1e-6)
        np.testing.assert_allclose(results["jvp"], results["reference"], rtol=1e-3,
                                   atol=1e-6)

    def test_rejects_non_bool(self):
        X, y, Xc, yc = _data()
        with pytest.raises(TypeError, match="train_on_clean must be True or False"):
            L2RWClassifier(MLP, Xc, yc, train_on_clean="yes", **ONE_BATCH).fit(X, y)

    def test_regressor_trains_on_clean_rows(self):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(200, 4)).astype(np.float32)
        y = (X @ rng.normal(size=4)).astype(np.float32)
        kwargs = dict(module=nn.Linear, module__in_features=4, module__out_features=1,
                      max_epochs=1, lr=0.05, batch_size=180, verbose=0, random_state=0)
        a = L2RWRegressor(clean_X=X[:20], clean_y=y[:20], **kwargs).fit(X[20:], y[20:])
        b = L2RWRegressor(clean_X=X[:20], clean_y=y[:20], train_on_clean=True,
                          **kwargs).fit(X[20:], y[20:])
        # one step: the same weights, a different update
        np.testing.assert_allclose(a.sample_weights_, b.sample_weights_, rtol=1e-5)
        assert not torch.allclose(a.module_.weight, b.module_.weight)
