"""sk-l2rw: Learning to Reweight Examples (Ren et al., ICML 2018) for scikit-learn.

The estimators :class:`L2RWClassifier` and :class:`L2RWRegressor` are skorch nets
whose training step reweights every row of each mini-batch by how well its gradient
agrees with the gradient of a small trusted ("clean") set.
:class:`ReweightedClassifier` hands those weights to any scikit-learn classifier
(gradient boosting, say); :mod:`sk_l2rw.modules` has a ready-made tabular MLP.
"""

from sk_l2rw.classifier import L2RWClassifier
from sk_l2rw.regressor import L2RWRegressor
from sk_l2rw.reweighted import ReweightedClassifier

__all__ = ["L2RWClassifier", "L2RWRegressor", "ReweightedClassifier", "__version__"]
__version__ = "0.1.0"
