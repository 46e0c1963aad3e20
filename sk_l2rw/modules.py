"""Ready-made torch modules, so that a tabular user need not write torch code.

A module class whose constructor takes ``n_features``, ``n_outputs`` or ``softmax``
with a default of None is sized by the L2RW estimators at fit time: ``n_features``
from the width of ``X`` (rows flattened), ``n_outputs`` from the number of classes
(or regression targets), ``softmax`` from the criterion (probabilities for
skorch's default ``NLLLoss``, logits otherwise), and ``n_categories`` from the
categorical columns of a DataFrame (:mod:`sk_l2rw.categorical`). A value given as
``module__*`` always wins.
"""

import inspect

import torch
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
    n_categories : tuple of int or None, default=None
        Codes per categorical column (levels + 2: missing and unknown). Each column
        gets an ``nn.Embedding`` whose output joins the numeric columns before the
        first layer; ``forward`` then takes the codes as ``categories``. None: set
        by the estimator when ``X`` is a DataFrame with categorical columns, else
        no embeddings.
    embedding_dim : int or None, default=None
        Width of every embedding. None: per column ``min(32, round(1.6 *
        n_codes ** 0.56))``, the rule of thumb of fastai's tabular models.

    Examples
    --------
    >>> from sk_l2rw import L2RWClassifier
    >>> from sk_l2rw.modules import MLP
    >>> net = L2RWClassifier(MLP, module__hidden_layer_sizes=(64, 64))
    """

    def __init__(self, n_features=None, n_outputs=None, hidden_layer_sizes=(256,),
                 dropout=0.0, softmax=None, n_categories=None, embedding_dim=None):
        super().__init__()
        codes = () if n_categories is None else tuple(n_categories)
        if any(isinstance(c, bool) or int(c) != c or c < 1 for c in codes):
            raise ValueError(f"n_categories must be positive ints; got {n_categories!r}")
        if embedding_dim is not None and (isinstance(embedding_dim, bool)
                                          or int(embedding_dim) != embedding_dim
                                          or embedding_dim < 1):
            raise ValueError(f"embedding_dim must be a positive int; got {embedding_dim!r}")
        for name, value in (("n_features", n_features), ("n_outputs", n_outputs)):
            if value is None:
                raise ValueError(
                    f"MLP needs {name}: fit it inside an L2RW estimator, which sets it "
                    f"from the data, or pass module__{name}=...")
            # every column may be categorical: then there are no numeric features
            least = 0 if name == "n_features" and codes else 1
            if isinstance(value, bool) or int(value) != value or value < least:
                raise ValueError(f"MLP's {name} must be a positive int; got {value!r}")
        sizes = tuple(hidden_layer_sizes)
        if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints; got {hidden_layer_sizes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        dims = [int(embedding_dim) if embedding_dim is not None
                else min(32, round(1.6 * int(c) ** 0.56)) for c in codes]
        self.embeddings = nn.ModuleList(nn.Embedding(int(c), d) for c, d in zip(codes, dims))
        layers = []
        width = int(n_features) + sum(dims)
        for size in sizes:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, int(n_outputs)))
        if softmax:
            layers.append(nn.Softmax(dim=-1))
        self.layers = nn.Sequential(*layers)

    def forward(self, X, categories=None):
        """Scores (or probabilities) of shape ``(n, n_outputs)``.

        Parameters
        ----------
        X : torch.Tensor of shape (n, n_features, ...)
            Numeric features (dense or sparse COO); rows are flattened.
        categories : torch.Tensor of shape (n, len(n_categories)), int64, optional
            Codes of the categorical columns; required when the MLP has embeddings.
        """
        if X.dim() > 2:
            X = X.flatten(1)
        if self.embeddings:
            if categories is None:
                raise ValueError(f"this MLP embeds {len(self.embeddings)} categorical "
                                 "columns: pass their codes as categories")
            parts = [emb(categories[:, j]) for j, emb in enumerate(self.embeddings)]
            X = torch.cat([X.to_dense() if X.is_sparse else X, *parts], dim=1)
        return self.layers(X)


def sized_kwargs(module_class, kwargs, sizes):
    """``kwargs`` for ``module_class`` with ``sizes`` filled in where its constructor
    has the parameter defaulting to None and ``kwargs`` gives none (how an L2RW
    estimator sizes :class:`MLP` from the data)."""
    kwargs = dict(kwargs)
    try:
        accepted = inspect.signature(module_class).parameters
    except (TypeError, ValueError):  # a builtin or C type: nothing to size
        accepted = {}
    for key, value in sizes.items():
        param = accepted.get(key)
        if param is not None and param.default is None and kwargs.get(key) is None:
            kwargs[key] = value
    return kwargs
