"""GLC (Gold Loss Correction) and IRBL (importance reweighting): the math against
slow references, and the estimators on generated class-dependent noise."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from skorch import NeuralNetClassifier

from sk_l2rw import GLCClassifier, IRBLClassifier
from sk_l2rw.glc import ForwardCorrectedLoss, corruption_matrix, correct_proba
from sk_l2rw.irbl import irbl_weights
from sk_l2rw.modules import MLP

#: True class i becomes noisy label j with probability FLIP[i, j]: class 0 keeps
#: its label, 40% of class 1 and 30% of class 2 are relabelled 0.
FLIP = np.array([[1.0, 0.0, 0.0], [0.4, 0.6, 0.0], [0.3, 0.0, 0.7]])


def noisy_problem(n=3000, seed=0, n_trusted=300):
    X, y = make_classification(n_samples=n, n_features=8, n_informative=6,
                               n_redundant=0, n_classes=3, n_clusters_per_class=1,
                               class_sep=3.0, flip_y=0.0,
                               random_state=seed)
    rng = np.random.RandomState(seed)
    y_noisy = np.array([rng.choice(3, p=FLIP[c]) for c in y])
    trusted = np.zeros(n, bool)
    trusted[rng.choice(n, n_trusted, replace=False)] = True
    labels = np.array(["a", "b", "c"])
    return X.astype(np.float32), labels[np.where(trusted, y, y_noisy)], labels[y], trusted


class TestMath:
    def test_corruption_matrix_is_the_class_mean_of_probabilities(self):
        rng = np.random.RandomState(0)
        proba = rng.dirichlet(np.ones(4), size=50)
        y = rng.randint(0, 4, 50)
        C = corruption_matrix(proba, y, 4)
        for i in range(4):
            np.testing.assert_allclose(C[i], proba[y == i].mean(axis=0))

    def test_corruption_matrix_needs_every_class(self):
        with pytest.raises(ValueError, match="classes \\[2\\] have none"):
            corruption_matrix(np.full((4, 3), 1 / 3), np.array([0, 1, 0, 1]), 3)

    def test_correct_proba_inverts_the_corruption(self):
        rng = np.random.RandomState(1)
        p_true = rng.dirichlet(np.ones(3), size=20)
        np.testing.assert_allclose(correct_proba(p_true @ FLIP, FLIP), p_true,
                                   atol=1e-10)

    def test_correct_proba_rows_are_distributions(self):
        rng = np.random.RandomState(2)
        out = correct_proba(rng.dirichlet(np.ones(3), size=30), FLIP)
        assert (out >= 0).all()
        np.testing.assert_allclose(out.sum(axis=1), 1.0)

    def test_forward_corrected_loss_against_the_formula(self):
        torch.manual_seed(0)
        logits = torch.randn(6, 3, dtype=torch.float64)
        target = torch.tensor([0, 1, 2, 3, 4, 5])  # three noisy, three trusted
        loss = ForwardCorrectedLoss(FLIP)(logits, target)
        p = torch.softmax(logits, 1).numpy()
        expected = [-np.log(p[i] @ FLIP[:, t]) for i, t in enumerate([0, 1, 2])]
        expected += [-np.log(p[i, t]) for i, t in zip([3, 4, 5], [0, 1, 2])]
        assert loss.item() == pytest.approx(np.mean(expected), rel=1e-10)

    def test_identity_corruption_is_cross_entropy(self):
        logits = torch.randn(5, 4, dtype=torch.float64)
        target = torch.tensor([0, 3, 1, 2, 2])
        got = ForwardCorrectedLoss(np.eye(4))(logits, target)
        assert got.item() == pytest.approx(
            torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-9)

    def test_irbl_weights_are_the_probability_ratio(self):
        pt = np.array([[0.8, 0.2], [0.1, 0.9], [0.5, 0.5]])
        pu = np.array([[0.4, 0.6], [0.3, 0.7], [0.0, 1.0]])
        np.testing.assert_allclose(irbl_weights(pt, pu, np.array([0, 1, 0])),
                                   [2.0, 0.9 / 0.7, 0.0])


@pytest.fixture(scope="module")
def glc_fitted():
    X, y, y_true, trusted = noisy_problem()
    model = GLCClassifier(LogisticRegression(max_iter=1000)).fit(X, y, trusted=trusted)
    return model, X, y, y_true, trusted


class TestGLC:
    def test_estimates_the_true_corruption(self, glc_fitted):
        model = glc_fitted[0]
        assert model.correction_ == "plugin"
        np.testing.assert_allclose(model.corruption_, FLIP, atol=0.12)

    def test_correction_beats_the_noisy_model(self, glc_fitted):
        model, X, y, y_true, trusted = glc_fitted
        plain = LogisticRegression(max_iter=1000).fit(X, y)
        assert model.predict(X).dtype == y.dtype
        assert np.mean(model.predict(X) == y_true) > np.mean(plain.predict(X) == y_true)

    def test_clone_and_pickle(self, glc_fitted):
        model, X, *_ = glc_fitted
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
        assert clone(model).get_params()["correction"] == "auto"

    def test_loss_correction_trains_a_skorch_net(self):
        X, y, y_true, trusted = noisy_problem(n=900, n_trusted=150)
        torch.manual_seed(0)
        net = NeuralNetClassifier(MLP, module__n_features=8, module__n_outputs=3,
                                  module__softmax=False,
                                  criterion=torch.nn.CrossEntropyLoss,
                                  optimizer=torch.optim.Adam, lr=0.01, max_epochs=15,
                                  train_split=None, verbose=0)
        model = GLCClassifier(net).fit(X, y, trusted=trusted)
        assert model.correction_ == "loss"
        assert isinstance(model.estimator_.criterion_, ForwardCorrectedLoss)
        proba = model.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert np.mean(model.predict(X) == y_true) > 0.7

    @pytest.mark.parametrize("estimator, correction, error, match", [
        (LinearSVC(), "plugin", TypeError, "needs predict_proba"),
        (LogisticRegression(), "loss", TypeError, "skorch NeuralNetClassifier"),
        (LogisticRegression(), "fancy", ValueError, "correction must be"),
    ])
    def test_bad_settings(self, estimator, correction, error, match):
        X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
        with pytest.raises(error, match=match):
            GLCClassifier(estimator, correction=correction).fit(X, y, trusted=trusted)

    def test_class_without_trusted_row_refused_before_any_fit(self, glc_fitted):
        model, X, y, _, trusted = glc_fitted
        model = clone(model).fit(X, y, trusted=trusted)
        before = model.predict_proba(X)
        no_c = trusted & (y != "c")
        with pytest.raises(ValueError, match="classes \\['c'\\] have none"):
            model.fit(X, y, trusted=no_c)
        np.testing.assert_array_equal(model.predict_proba(X), before)


class TestIRBL:
    def test_flipped_rows_weigh_less_and_trusted_weigh_one(self):
        X, y, y_true, trusted = noisy_problem()
        model = IRBLClassifier(LogisticRegression(max_iter=1000)).fit(X, y,
                                                                       trusted=trusted)
        w = model.sample_weight_
        assert w.shape == (len(X),)
        np.testing.assert_array_equal(w[trusted], 1.0)
        flipped = (y != y_true) & ~trusted
        intact = (y == y_true) & ~trusted
        assert w[flipped].mean() < 0.6 * w[intact].mean()

    def test_probability_estimator_is_used(self):
        X, y, _, trusted = noisy_problem(n=600, n_trusted=120)
        a = IRBLClassifier(LogisticRegression(max_iter=1000)).fit(X, y, trusted=trusted)
        b = IRBLClassifier(LogisticRegression(max_iter=1000),
                           probability_estimator=KNeighborsClassifier(15)).fit(
            X, y, trusted=trusted)
        assert not np.allclose(a.sample_weight_, b.sample_weight_)

    @pytest.mark.parametrize("kwargs, match", [
        (dict(estimator=KNeighborsClassifier()), "takes sample_weight"),
        (dict(estimator=LogisticRegression(), probability_estimator=LinearSVC()),
         "no predict_proba"),
    ])
    def test_bad_estimators(self, kwargs, match):
        X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
        with pytest.raises(TypeError, match=match):
            IRBLClassifier(**kwargs).fit(X, y, trusted=trusted)

    def test_class_without_trusted_row_warns(self):
        X, y, _, trusted = noisy_problem(n=600, n_trusted=120)
        with pytest.warns(UserWarning, match="classes \\['c'\\] have no trusted row"):
            model = IRBLClassifier(LogisticRegression(max_iter=1000)).fit(
                X, y, trusted=trusted & (y != "c"))
        assert (model.sample_weight_[(y == "c")] == 0).all()


@pytest.mark.parametrize("cls", [GLCClassifier, IRBLClassifier])
def test_unfitted_predict_is_refused(cls):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        cls().predict(np.zeros((2, 3)))
