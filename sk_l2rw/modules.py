"""Ready-made torch modules, so that a tabular user need not write torch code.

A module class whose constructor takes ``n_features``, ``n_outputs`` or ``softmax``
with a default of None is sized by the L2RW estimators at fit time: ``n_features``
from the width of ``X`` (rows flattened), ``n_outputs`` from the number of classes
(or regression targets), ``softmax`` from the criterion (probabilities for
skorch's default ``NLLLoss``, logits otherwise). A value given as ``module__*``
always wins.
"""

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Multi-layer perceptron for tables: ``Linear -> ReLU -> ... -> Linear``.

    Every layer is one that the layer-wise ("ghost") meta-gradients handle, so L2RW
    runs at its fastest with it.

    Parameters
    ----------
    n_features : int or None, default=None
        Input width; rows of more than one dimension are flattened. None: set by
        the estimator from ``X``.
    n_outputs : int or None, default=None
        Output width. None: set by the estimator (classes, or targets).
    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers, as in scikit-learn's ``MLPClassifier``
        (``()`` gives a linear model).
    dropout : float, default=0.0
        Dropout probability after every hidden layer.
    softmax : bool or None, default=None
        Output probabilities instead of raw scores. None: set by the estimator
        (True with ``criterion=torch.nn.NLLLoss``, skorch's convention); outside an
        estimator None means False.

    Examples
    --------
    >>> from sk_l2rw import L2RWClassifier
    >>> from sk_l2rw.modules import MLP
    >>> net = L2RWClassifier(MLP, module__hidden_layer_sizes=(64, 64))
    """

    def __init__(self, n_features=None, n_outputs=None, hidden_layer_sizes=(256,),
                 dropout=0.0, softmax=None):
        super().__init__()
        for name, value in (("n_features", n_features), ("n_outputs", n_outputs)):
            if value is None:
                raise ValueError(
                    f"MLP needs {name}: fit it inside an L2RW estimator, which sets it "
                    f"from the data, or pass module__{name}=...")
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"MLP's {name} must be a positive int; got {value!r}")
        sizes = tuple(hidden_layer_sizes)
        if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints; got {hidden_layer_sizes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        layers = []
        width = int(n_features)
        for size in sizes:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, int(n_outputs)))
        if softmax:
            layers.append(nn.Softmax(dim=-1))
        self.layers = nn.Sequential(*layers)

    def forward(self, X):
        """Scores (or probabilities) of shape ``(n, n_outputs)``."""
        return self.layers(X.flatten(1) if X.dim() > 2 else X)
