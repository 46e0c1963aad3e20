"""sk-l2rw: Learning to Reweight Examples (Ren et al., ICML 2018) for scikit-learn.

The estimator :class:`L2RWClassifier` is a skorch ``NeuralNetClassifier`` whose
training step reweights every row of each mini-batch by how well its gradient
agrees with the gradient of a small trusted ("clean") set.
"""

from sk_l2rw.classifier import L2RWClassifier

__all__ = ["L2RWClassifier", "__version__"]
__version__ = "0.1.0"
