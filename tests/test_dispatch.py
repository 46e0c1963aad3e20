"""sk_l2rw.dispatch: which computation runs, its check of ghost, its fallbacks."""

import pytest
import torch
from torch import nn

from conftest import MLP, BatchNormMLP, make_blobs_data
from sk_l2rw import L2RWClassifier
from sk_l2rw.dispatch import Computation, choose_meta_gradient
from sk_l2rw.exceptions import FallbackWarning


class TestChoice:
    def test_explicit_ghost_on_batchnorm_names_the_layer(self):
        with pytest.raises(ValueError, match="BatchNorm1d"):
            choose_meta_gradient(BatchNormMLP(), "ghost")

    def test_auto_takes_jvp_where_ghost_has_no_rule(self):
        module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        assert choose_meta_gradient(module, "auto") == "jvp"
        assert choose_meta_gradient(MLP(), "auto") == "ghost"

    @pytest.mark.parametrize("requested", ["jvp", "reference"])
    def test_an_explicit_computation_is_kept(self, requested):
        assert choose_meta_gradient(MLP(), requested) == requested

    def test_no_clean_set_trains_plainly(self):
        assert Computation(MLP(), "auto", has_clean=False).method == "plain"

    def test_only_auto_checks_ghost_on_its_first_step(self):
        assert Computation(MLP(), "auto", has_clean=True).verifies_next
        assert not Computation(MLP(), "ghost", has_clean=True).verifies_next


class Sneaky(nn.Module):
    """The hidden weight reused functionally: invisible to ghost's layer hooks."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, X):
        h = torch.relu(self.hidden(X))
        h = h + 0.1 * torch.nn.functional.linear(X, self.hidden.weight)
        return torch.softmax(self.out(h), -1)


class TestFallback:
    def test_auto_falls_back_when_a_parameter_is_used_outside_its_layer(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(Sneaky, X[:10], y[:10], max_epochs=1, batch_size=32,
                             lr=0.1, random_state=0)
        with pytest.warns(FallbackWarning, match="disagreed"):
            net.fit(X[10:], y[10:])
        assert net.meta_gradient_ == "jvp"
