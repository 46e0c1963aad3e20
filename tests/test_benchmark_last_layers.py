"""benchmarks/last_layers.py: the last-k meta-gradient against slow references, its
rows, and the report rebuilt from them."""

import copy
import json

import pytest
import torch
from conftest import make_blobs_data
from torch import nn

from benchmarks import last_layers
from benchmarks.models import LeNet, mlp
from sk_l2rw import L2RWClassifier, dispatch
from sk_l2rw.ghost import ghost_step
from sk_l2rw.meta_gradient import reference_step

LOSS = nn.CrossEntropyLoss(reduction="none")


@pytest.fixture(scope="module")
def lenet_batch():
    g = torch.Generator().manual_seed(0)
    X, Xc = torch.randn(6, 784, generator=g), torch.randn(4, 784, generator=g)
    y, yc = torch.randint(10, (6,), generator=g), torch.randint(10, (4,), generator=g)
    torch.manual_seed(0)
    return LeNet(), X, y, Xc, yc


def _grads(module):
    return [p.grad.clone() for p in module.parameters()]


class TestLastLayersStep:
    def test_all_layers_is_exact_l2rw(self, lenet_batch):
        template, X, y, Xc, yc = lenet_batch
        a, b = copy.deepcopy(template), copy.deepcopy(template)
        fast = last_layers.last_layers_step(a, LOSS, X, y, Xc, yc, k=5, lr=0.1)
        exact = ghost_step(b, LOSS, X, y, Xc, yc, lr=0.1)
        torch.testing.assert_close(fast.meta_gradients, exact.meta_gradients)
        torch.testing.assert_close(fast.weights, exact.weights)
        for ga, gb in zip(_grads(a), _grads(b)):
            torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)

    @pytest.mark.parametrize("k", [1, 3])
    def test_meta_gradients_are_the_papers_over_the_last_layers(self, lenet_batch, k):
        template, X, y, Xc, yc = lenet_batch
        fast = last_layers.last_layers_step(copy.deepcopy(template), LOSS, X, y, Xc, yc,
                                            k=k, lr=0.1, update=False)
        # The paper's double back-propagation, over the last k layers' parameters.
        frozen = copy.deepcopy(template)
        for layer in last_layers.trainable_layers(frozen)[:-k]:
            layer.requires_grad_(False)
        slow = reference_step(frozen, LOSS, X, y, Xc, yc, lr=0.1)
        torch.testing.assert_close(fast.meta_gradients, slow.meta_gradients,
                                   rtol=1e-4, atol=1e-7)
        assert not torch.allclose(
            fast.meta_gradients,
            ghost_step(copy.deepcopy(template), LOSS, X, y, Xc, yc, lr=0.1,
                       update=False).meta_gradients)

    def test_update_is_the_weighted_gradient_of_every_parameter(self, lenet_batch):
        template, X, y, Xc, yc = lenet_batch
        a, b = copy.deepcopy(template), copy.deepcopy(template)
        result = last_layers.last_layers_step(a, LOSS, X, y, Xc, yc, k=1, lr=0.1)
        # Exact ghost's update with the same weights given.
        ghost_step(b, LOSS, X, y, Xc, yc, lr=0.1, normalize=lambda _: result.weights)
        for ga, gb in zip(_grads(a), _grads(b)):
            torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
        assert all(p.requires_grad for p in a.parameters())

    def test_bad_k_is_refused_and_leaves_the_module_trainable(self, lenet_batch):
        template, X, y, Xc, yc = lenet_batch
        module = copy.deepcopy(template)
        with pytest.raises(ValueError, match="k must be between 1 and 5"):
            last_layers.last_layers_step(module, LOSS, X, y, Xc, yc, k=6)
        with pytest.raises(ValueError, match="clean rows"):
            last_layers.last_layers_step(module, LOSS, X, y, Xc, yc, k=1, clean_share=0.5)
        assert all(p.requires_grad and p.grad is None for p in module.parameters())

    def test_estimator_runs_it_inside_the_context_only(self):
        X, y = make_blobs_data(n=200, seed=0)
        Xc, yc = make_blobs_data(n=30, seed=0)  # same centres, fresh rows

        def fit():
            torch.manual_seed(0)
            net = L2RWClassifier(mlp((X.shape[1], 16, 3)), Xc, yc,
                                 criterion=nn.CrossEntropyLoss, meta_gradient="ghost",
                                 max_epochs=2, lr=0.1, random_state=0, verbose=0)
            return net.fit(X, y).sample_weights_

        exact = fit()
        with last_layers.meta_gradient_of_last(1):
            last = fit()
        assert dispatch.STEPS["ghost"] is ghost_step
        assert abs(last - exact).max() > 1e-4
        assert abs(fit() - exact).max() == 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("last_layers")
    return out, last_layers.main(["--smoke", "--out", str(out)])


class TestLastLayersStudy:
    def test_rows(self, smoke):
        rows = smoke[1]["rows"]
        assert rows["ks"] == [1] and rows["module"] == "mlp"
        steps = rows["steps"]
        assert steps["layers"] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
        assert set(steps["ms"]) == {"plain", "exact", "last 1", "floor"}
        assert all(len(t) == 2 and min(t) > 0 for t in steps["ms"].values())
        acc = rows["accuracy"]
        # digits, one seed, three noise kinds at 10 clean rows per class; exact and k=1.
        assert sorted((r["kind"], r["k"] or 0) for r in acc) == sorted(
            (kind, k) for kind in ("uniform", "background", "pair") for k in (0, 1))
        assert all(0 <= r["acc"] <= 1 for r in acc)
        (verdict,) = last_layers.verdicts(rows)
        cells = last_layers.accuracy_differences(acc, 1)
        assert len(cells) == 3
        assert verdict["accuracy"] == pytest.approx(
            sum(v[0] for v in cells.values()) / 3)
        assert verdict["ship"] == (verdict["cost_ok"] and verdict["accuracy_ok"])

    def test_render_rebuilds_the_report_from_the_json(self, smoke, tmp_path):
        out, saved = smoke
        assert json.loads((out / "last_layers.json").read_text())["rows"] == \
            json.loads(json.dumps(saved["rows"]))
        last_layers.main(["--render", str(out / "last_layers.json"), "--out", str(tmp_path)])
        assert (tmp_path / "last_layers.md").read_text() == \
            (out / "last_layers.md").read_text()
