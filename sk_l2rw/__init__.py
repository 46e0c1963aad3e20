"""sk-l2rw: Learning to Reweight Examples (Ren et al., ICML 2018) for scikit-learn.

The estimators :class:`L2RWClassifier` and :class:`L2RWRegressor` are skorch nets
whose training step reweights every row of each mini-batch by how well its gradient
agrees with the gradient of a small trusted ("clean") set.
:class:`ReweightedClassifier` hands those weights to any scikit-learn classifier
(gradient boosting, say); :mod:`sk_l2rw.modules` has a ready-made tabular MLP.
With the trusted rows inside the table (``fit(X, y, trusted=mask)``),
:class:`TrustedClassifier` scores every route (L2RW's, :class:`GLCClassifier`,
:class:`IRBLClassifier`, ...) on held-out trusted rows and keeps the best.
"""

from sk_l2rw.classifier import L2RWClassifier
from sk_l2rw.glc import GLCClassifier
from sk_l2rw.irbl import IRBLClassifier
from sk_l2rw.regressor import L2RWRegressor
from sk_l2rw.reweighted import ReweightedClassifier
from sk_l2rw.selection import TrustedClassifier

__all__ = ["GLCClassifier", "IRBLClassifier", "L2RWClassifier", "L2RWRegressor",
           "ReweightedClassifier", "TrustedClassifier", "__version__"]
__version__ = "0.1.0"
