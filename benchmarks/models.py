"""The networks the benchmarks train, defined once.

Tabular nets are :class:`sk_l2rw.modules.MLP` (ReLU layers, logits), built here from
a tuple of layer widths; images go through :class:`LeNet`, the paper's CNN.
"""

from torch import nn
from torch.nn import functional as F

from sk_l2rw.modules import MLP

__all__ = ["LeNet", "mlp"]


def mlp(sizes):
    """An MLP of layer widths ``sizes``, e.g. ``(54, 256, 256, 7)``: input, hidden
    layers, output (logits)."""
    sizes = tuple(int(s) for s in sizes)
    return MLP(n_features=sizes[0], n_outputs=sizes[-1], hidden_layer_sizes=sizes[1:-1],
               softmax=False)


class LeNet(nn.Module):
    """LeNet-5 on 28x28 images: conv 1->6 k5, pool, conv 6->16 k5, pool,
    fc 256-120-84-``n_classes`` (logits).

    Takes images as ``(n, 1, 28, 28)`` or as 784 flat pixels per row (a table of
    pixels, as the estimators are given).
    """

    def __init__(self, n_features=784, n_classes=10):
        super().__init__()
        if n_features != 28 * 28:
            raise ValueError(f"LeNet takes 28x28 images (784 features), got {n_features} "
                             "features")
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, X):
        X = F.max_pool2d(F.relu(self.conv1(X.reshape(-1, 1, 28, 28))), 2)
        X = F.max_pool2d(F.relu(self.conv2(X)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(X.flatten(1))))))
