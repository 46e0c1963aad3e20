"""Sparse X (scipy CSR/CSC): sparse batches, ghost on sparse rows, every computation."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler
from torch import nn

from sk_l2rw import L2RWClassifier
from sk_l2rw.data import SparseRows, sparse_tensor
from sk_l2rw.ghost import ghost_step
from sk_l2rw.meta_gradient import reference_step
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels


def sparse_problem(n=600, d=60, density=0.15, seed=0):
    """A text-like problem: a few active columns per row, the label from a linear
    score, 40% of the training labels flipped to class 0."""
    rng = np.random.RandomState(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.uniform(0.5, 1.5, k)).astype(np.float32)
    y = (X @ rng.randn(d) > 0).astype(np.int64)
    y_noisy, flipped = flip_labels(y[40:], 0.4, "background", background_class=0,
                                   random_state=seed)
    return X[40:], y_noisy, flipped, X[:40], y[:40], y[40:]


KW = dict(criterion=nn.CrossEntropyLoss, lr=0.5, max_epochs=8, batch_size=64,
          verbose=0, random_state=0, module__hidden_layer_sizes=(32,))


@pytest.fixture(scope="module")
def fitted():
    X, y, flipped, Xc, yc, y_true = sparse_problem()
    net = L2RWClassifier(MLP, Xc, yc, **KW).fit(X, y)
    return net, X, y, flipped, Xc, yc, y_true


class TestBatches:
    def test_sparse_tensor_round_trip(self):
        A = sp.random(7, 5, density=0.4, format="csc", random_state=0)
        t = sparse_tensor(A, torch.float64, "cpu")
        assert t.layout == torch.sparse_coo and t.is_coalesced()
        np.testing.assert_array_equal(t.to_dense().numpy(), A.toarray())

    @pytest.mark.parametrize("index", [slice(2, 5), np.array([4, 0, 4]),
                                       torch.tensor([6, 1])])
    def test_rows_come_out_as_sparse_tensors(self, index):
        A = sp.random(7, 5, density=0.4, format="csr", random_state=1)
        rows = SparseRows(A, torch.float32, "cpu")
        assert len(rows) == 7 and rows.shape == (7, 5)
        got = rows[index]
        assert got.layout == torch.sparse_coo and got.dtype == torch.float32
        key = index.numpy() if torch.is_tensor(index) else index
        np.testing.assert_allclose(got.to_dense().numpy(), A[key].toarray(), rtol=1e-6)


class TestGhostOnSparseRows:
    @pytest.mark.parametrize("bias", [True, False])
    def test_same_weights_and_gradients_as_reference(self, bias):
        torch.manual_seed(0)
        A = sp.random(48, 30, density=0.1, format="csr", random_state=0)
        X = sparse_tensor(A[:32], torch.float64, "cpu")
        Xc = sparse_tensor(A[32:], torch.float64, "cpu")
        y, yc = torch.randint(0, 3, (32,)), torch.randint(0, 3, (16,))
        module = nn.Sequential(nn.Linear(30, 8, bias=bias), nn.ReLU(), nn.Linear(8, 3))
        module.double()
        loss_fn = lambda out, t: nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
        ref = reference_step(module, loss_fn, X, y, Xc, yc, lr=0.1)
        ref_grads = [p.grad.clone() for p in module.parameters()]
        module.zero_grad()
        got = ghost_step(module, loss_fn, X, y, Xc, yc, lr=0.1)
        torch.testing.assert_close(got.meta_gradients, ref.meta_gradients)
        torch.testing.assert_close(got.weights, ref.weights)
        for p, g in zip(module.parameters(), ref_grads):
            assert p.grad.layout == torch.strided
            torch.testing.assert_close(p.grad, g)

    def test_first_layer_input_is_never_densified(self):
        """The recorded input of the first layer stays sparse through the step."""
        A = sp.random(40, 30, density=0.1, format="csr", random_state=0)
        X = sparse_tensor(A[:32], torch.float32, "cpu")
        Xc = sparse_tensor(A[32:], torch.float32, "cpu")
        module = nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 3))
        seen = []
        module[0].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].layout))
        loss_fn = lambda out, t: nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
        with torch.sparse.check_sparse_tensor_invariants(False):
            ghost_step(module, loss_fn, X, torch.zeros(32, dtype=torch.long), Xc,
                       torch.zeros(8, dtype=torch.long))
        assert seen == [torch.sparse_coo]


class TestFitAndPredict:
    def test_fits_predicts_and_weighs(self, fitted):
        net, X, y, flipped, Xc, yc, y_true = fitted
        assert net.meta_gradient_ == "ghost"
        assert net.sample_weights_.shape == (8, len(y))
        w = np.nanmean(net.sample_weights_, axis=0)
        assert w[flipped].mean() < 0.7 * w[~flipped].mean()
        assert net.n_features_in_ == X.shape[1]
        assert net.predict_proba(X).shape == (len(y), 2)
        assert (net.predict(X) == y_true).mean() > 0.8

    def test_module_receives_sparse_batches(self):
        # meta_gradient="ghost": "auto" checks its first ghost step against jvp,
        # which densifies that one batch (torch has no forward-mode sparse kernels).
        X, y, flipped, Xc, yc, _ = sparse_problem(200)
        net = L2RWClassifier(MLP, Xc, yc, meta_gradient="ghost",
                             **dict(KW, max_epochs=1)).fit(X, y)
        seen = []
        net.module_.layers[0].register_forward_hook(
            lambda mod, inputs, out: seen.append(inputs[0].layout))
        net.partial_fit(X, y)
        net.predict(X)
        assert len(seen) > 4 and set(seen) == {torch.sparse_coo}

    def test_predictions_equal_those_on_the_dense_matrix(self, fitted):
        net, X, *_ = fitted
        np.testing.assert_allclose(net.predict_proba(X), net.predict_proba(X.toarray()),
                                   rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("method", ["jvp", "reference"])
    def test_same_weights_as_ghost(self, method):
        X, y, flipped, Xc, yc, _ = sparse_problem(200)
        kw = dict(KW, max_epochs=2, clean_batch_size=16)
        ghost = L2RWClassifier(MLP, Xc, yc, meta_gradient="ghost", **kw).fit(X, y)
        other = L2RWClassifier(MLP, Xc, yc, meta_gradient=method, **kw).fit(X, y)
        np.testing.assert_allclose(ghost.sample_weights_, other.sample_weights_,
                                   rtol=1e-4, atol=1e-6)

    @pytest.mark.parametrize("form", ["csc", "dense"])
    def test_clean_set_in_another_form(self, form):
        X, y, flipped, Xc, yc, _ = sparse_problem(200)
        kw = dict(KW, max_epochs=2)
        ref = L2RWClassifier(MLP, **kw).fit(X, y, X_val=Xc, y_val=yc)
        other = Xc.tocsc() if form == "csc" else Xc.toarray()
        got = L2RWClassifier(MLP, **kw).fit(X.tocsc(), y, X_val=other, y_val=yc)
        np.testing.assert_allclose(got.sample_weights_, ref.sample_weights_, rtol=1e-5,
                                   atol=1e-7)

    def test_same_weights_as_the_densified_fit(self):
        X, y, flipped, Xc, yc, _ = sparse_problem(200)
        kw = dict(KW, max_epochs=2)
        sparse = L2RWClassifier(MLP, Xc, yc, **kw).fit(X, y)
        dense = L2RWClassifier(MLP, Xc.toarray(), yc, **kw).fit(X.toarray(), y)
        np.testing.assert_allclose(sparse.sample_weights_, dense.sample_weights_,
                                   rtol=1e-4, atol=1e-6)

    def test_in_a_pipeline_and_a_search(self):
        X, y, flipped, Xc, yc, _ = sparse_problem(300)
        pipe = make_pipeline(MaxAbsScaler(), L2RWClassifier(MLP, **dict(KW, max_epochs=2)))
        pipe.set_params(l2rwclassifier__clean_X=Xc, l2rwclassifier__clean_y=yc)
        search = GridSearchCV(pipe, {"l2rwclassifier__lr": [0.1, 0.5]}, cv=2,
                              error_score="raise").fit(X, y)
        assert search.predict(X).shape == (len(y),)


class TestBadInput:
    def test_nan_in_a_sparse_matrix_names_row_and_column(self, fitted):
        net, X, y, *_ = fitted
        net = copy.deepcopy(net)
        before = net.predict_proba(X)
        params = {k: v.clone() for k, v in net.module_.state_dict().items()}
        bad = X.copy()
        bad.data[bad.indptr[5]] = np.nan  # the first stored value of row 5
        column = bad.indices[bad.indptr[5]]
        with pytest.raises(ValueError, match=rf"X \(sparse\) contains NaN or infinity, "
                                             rf"first at row 5, column {column}"):
            net.fit(bad, y)
        for name, value in net.module_.state_dict().items():
            assert torch.equal(value, params[name]), name
        if net.device_ == "cpu":
            # On CUDA a sparse product sums in no fixed order (40 calls on one H200
            # gave 40 predictions one rounding apart): the parameters decide there.
            np.testing.assert_array_equal(net.predict_proba(X), before)
        with pytest.raises(ValueError, match=r"contains NaN or infinity, first at row 5"):
            net.predict(bad)

    def test_clean_set_that_is_the_training_rows(self):
        X, y, *_ = sparse_problem(200)
        with pytest.raises(ValueError, match="holds exactly the training rows"):
            L2RWClassifier(MLP, **KW).fit(X, y, X_val=X, y_val=y)

    def test_other_width_at_predict(self, fitted):
        net, X, *_ = fitted
        with pytest.raises(ValueError, match="features"):
            net.predict(X[:, :10])
