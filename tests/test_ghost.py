"""sk_l2rw.ghost beyond its equality with the reference (tests/test_meta_gradient.py):
which layers it has no rule for."""

from torch import nn

from conftest import MLP, BatchNormMLP, Conv1dNet, LeNet
from sk_l2rw.ghost import unsupported_layers


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
