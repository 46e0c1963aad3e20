"""Which exact computation of the meta-gradients runs, in one place.

``meta_gradient="auto"`` starts from the fastest computation the module allows
(:func:`choose_meta_gradient`), checks ghost against jvp on the first batch of the
fit, and falls back to the paper's double back-propagation when ``torch.func``
cannot run the module. :class:`Computation` holds that decision for one fit and
runs every step through it.
"""

import warnings

import torch

from sk_l2rw import ghost
from sk_l2rw.exceptions import FallbackWarning
from sk_l2rw.meta_gradient import jvp_meta_gradients, jvp_step, plain_step, reference_step

__all__ = ["STEPS", "choose_meta_gradient", "Computation"]

STEPS = {
    "reference": reference_step,
    "jvp": jvp_step,
    "ghost": ghost.ghost_step,
    "plain": plain_step,
}


def choose_meta_gradient(module, requested):
    """The computation to run for ``requested`` on ``module``.

    ``"auto"`` takes ``"ghost"`` when every layer with trainable parameters is
    supported and rows are independent, else ``"jvp"`` (which itself falls back to
    ``"reference"`` when ``torch.func`` cannot run the module). An explicit
    ``"ghost"`` on an unsupported module is an error that names the layers.

    Returns
    -------
    str
    """
    if requested in ("ghost", "auto"):
        bad = ghost.unsupported_layers(module)
        if not bad:
            return "ghost"
        if requested == "ghost":
            raise ValueError(
                "meta_gradient='ghost' cannot handle these layers: "
                f"{', '.join(bad)}; use meta_gradient='auto' or 'jvp'")
        return "jvp"
    return requested


class Computation:
    """The computation of one fit: chosen once, revised at most twice by "auto".

    Parameters
    ----------
    module : torch.nn.Module
    requested : {"auto", "ghost", "jvp", "reference"}
    has_clean : bool
        Without a clean set the step is plain training.

    Attributes
    ----------
    method : str
        What runs now: "ghost", "jvp", "reference" or "plain".
    """

    def __init__(self, module, requested, has_clean):
        self.requested = requested
        self.method = choose_meta_gradient(module, requested) if has_clean else "plain"
        # "auto" checks its choice of ghost once, on the first batch.
        self._verify = self.method == "ghost" and requested == "auto"

    @property
    def verifies_next(self):
        """Whether the next step first checks ghost against jvp ("auto")."""
        return self._verify

    def step(self, module, loss_fn, X, y, X_clean, y_clean, *, zero_grad, agree=None,
             **kwargs):
        """One training step (arguments of :func:`sk_l2rw.meta_gradient.reference_step`).

        ``zero_grad`` clears the parameters' gradients before a fallback reruns the
        step; ``agree(ok)`` (a data-parallel fit's) turns this rank's check of ghost
        into the verdict of all ranks; ``kwargs`` are the step's keyword arguments.
        """
        if self._verify:
            self._verify = False
            agrees = self._ghost_agrees(module, loss_fn, X, y, X_clean, y_clean, **kwargs)
            if agree is not None:
                agrees = agree(agrees)
            if not agrees:
                warnings.warn(
                    "meta_gradient='auto': the layer-wise computation disagreed with "
                    "the forward-mode one on this module (a parameter used outside "
                    "its layer, e.g. F.linear(x, self.layer.weight)?); using 'jvp'",
                    FallbackWarning, stacklevel=3)
                self.method = "jvp"
        try:
            return STEPS[self.method](module, loss_fn, X, y, X_clean, y_clean, **kwargs)
        except (RuntimeError, NotImplementedError):
            # torch.func cannot run every module; "auto" then takes the paper's route.
            if not (self.method == "jvp" and self.requested == "auto"):
                raise
            self.method = "reference"
            zero_grad()
            return reference_step(module, loss_fn, X, y, X_clean, y_clean, **kwargs)

    @staticmethod
    def _ghost_agrees(module, loss_fn, X, y, X_clean, y_clean, *, lr, forward_kwargs,
                      clean_weights=None, clean_share=0.0, normalize=None):
        """Ghost against jvp on one batch, with dropout off in both.

        Ghost can only see parameters used inside their own layer; a parameter a
        parent module uses directly would be missed silently. One comparison on the
        first batch catches that.
        """
        was_training = module.training
        module.eval()
        try:
            fast = ghost.ghost_step(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                                    forward_kwargs=forward_kwargs,
                                    clean_weights=clean_weights,
                                    update=False).meta_gradients
            try:
                exact = jvp_meta_gradients(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                                           forward_kwargs=forward_kwargs,
                                           clean_weights=clean_weights)
            except (RuntimeError, NotImplementedError):
                return True  # nothing to compare with; trust the layer rules
        finally:
            module.train(was_training)
        scale = exact.abs().max()
        return bool(torch.allclose(fast, exact, rtol=1e-3, atol=float(1e-4 * scale)))
