"""benchmarks/ports.py: the public ways of computing L2RW give the reference's step."""

import copy

import pytest
import torch
from torch import nn

from benchmarks import ports
from benchmarks.models import LeNet, mlp

CE = nn.CrossEntropyLoss(reduction="none")


def batch(shape, n, m, classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn((n, *shape), generator=g), torch.randint(classes, (n,), generator=g),
            torch.randn((m, *shape), generator=g), torch.randint(classes, (m,), generator=g))


@pytest.mark.parametrize("make, shape, classes", [
    (lambda: mlp((6, 16, 16, 3)), (6,), 3),
    (lambda: LeNet(n_classes=4), (1, 28, 28), 4),
])
def test_every_port_gives_the_reference_weights_and_gradients(make, shape, classes):
    torch.manual_seed(0)
    module = make()
    X, y, Xc, yc = batch(shape, 24, 8, classes)
    diffs = ports.check_ports(module, CE, X, y, Xc, yc, lr=0.5)
    assert sorted(diffs) == sorted(ports.PORTS)
    assert max(diffs.values()) < 1e-6
    # the batch is not degenerate: some rows get weight, some none
    weights = ports.higher_step(copy.deepcopy(module), CE, X, y, Xc, yc, lr=0.5)
    assert (weights > 0).any() and (weights == 0).any()


def test_a_port_that_differs_is_caught(monkeypatch):
    def uniform(module, loss_fn, X, y, X_clean, y_clean, *, lr):
        weights = torch.full((len(y),), 1.0 / len(y))
        (loss_fn(module(X), y) * weights).sum().backward()
        return weights

    monkeypatch.setitem(ports.PORTS, "uniform", uniform)
    torch.manual_seed(0)
    X, y, Xc, yc = batch((6,), 24, 8, 3)
    with pytest.raises(AssertionError, match="uniform"):
        ports.check_ports(mlp((6, 16, 3)), CE, X, y, Xc, yc, lr=0.5)
