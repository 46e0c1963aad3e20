"""sk_l2rw.ghost beyond its equality with the reference (tests/test_meta_gradient.py):
which layers it has no rule for, and the compiled step."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import MLP, BatchNormMLP, Conv1dNet, LeNet, TiedFrozenNet
from sk_l2rw.ghost import compiled_ghost_step, ghost_step, unsupported_layers


class TestUnsupportedLayers:
    def test_supported_modules_have_none(self):
        for module in (MLP(), LeNet(), Conv1dNet()):
            assert unsupported_layers(module) == []

    def test_layers_without_a_rule_are_named(self):
        module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        assert unsupported_layers(module) == ["LayerNorm"]
        reflect = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect"))
        assert unsupported_layers(reflect) == ["Conv1d"]

    def test_batch_statistics_mix_rows(self):
        assert unsupported_layers(BatchNormMLP()) == ["BatchNorm1d (batch statistics)"]


def _losses(out, target):
    return F.cross_entropy(out, target, reduction="none")


def _batch(n_features=6, n=24, m=8, n_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, n_features, generator=g),
            torch.randint(0, n_classes, (n,), generator=g),
            torch.randn(m, n_features, generator=g),
            torch.randint(0, n_classes, (m,), generator=g))


def _counting_backend(counts):
    """A torch.compile backend that runs the traced graph eagerly and counts graphs."""
    def backend(gm, example_inputs):
        counts.append(len(list(gm.graph.nodes)))
        return gm.forward
    return backend


@pytest.mark.usefixtures("fresh_dynamo")
class TestCompiledGhostStep:
    """compiled_ghost_step: one traced graph, the eager step's numbers."""

    @pytest.mark.parametrize("case", ["plain", "clean_weights_and_share", "tied_frozen"])
    def test_matches_the_eager_step(self, case):
        torch.manual_seed(0)
        module = (TiedFrozenNet() if case == "tied_frozen"
                  else nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)))
        X, y, Xc, yc = _batch()
        kwargs = {"lr": 0.3}
        if case == "clean_weights_and_share":
            kwargs.update(clean_weights=torch.linspace(0.5, 2.0, 8) / 8, clean_share=0.25)
        module.zero_grad()
        eager = ghost_step(module, _losses, X, y, Xc, yc, **kwargs)
        expected = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
        module.zero_grad()
        # aot_eager: the traced graph without inductor's C++ build (seconds, not tens).
        fast = compiled_ghost_step({"backend": "aot_eager"})(module, _losses, X, y, Xc, yc,
                                                             **kwargs)
        torch.testing.assert_close(fast.weights, eager.weights, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fast.meta_gradients, eager.meta_gradients)
        torch.testing.assert_close(fast.loss, eager.loss)
        for p, want in zip(module.parameters(), expected):
            if want is None:
                assert p.grad is None
            else:
                torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-7)

    @pytest.mark.parametrize("module", [
        nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4)),
        nn.Sequential(nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 3, 3), nn.ReLU(),
                      nn.Flatten(), nn.Linear(12, 4)),
    ], ids=["mlp_dropout", "conv1d"])
    def test_one_graph_no_breaks(self, module):
        X, y, Xc, yc = _batch()
        counts = []
        step = compiled_ghost_step({"backend": _counting_backend(counts)})
        step(module, _losses, X, y, Xc, yc, lr=0.1)
        step(module, _losses, X, y, Xc, yc, lr=0.05)  # another lr: no new graph
        assert len(counts) == 1

    def test_a_new_module_of_the_same_shape_reuses_the_graph(self):
        counts = []
        backend = _counting_backend(counts)
        X, y, Xc, yc = _batch()
        for seed in (0, 1):
            torch.manual_seed(seed)
            module = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
            compiled_ghost_step({"backend": backend})(module, _losses, X, y, Xc, yc)
        assert len(counts) == 1  # no guard on the parameters' identity
        module(X)  # the step's hooks are gone afterwards
        assert all(not layer._forward_hooks for layer in module.modules())
