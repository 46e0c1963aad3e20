"""One fit for tests/test_faults.py, in its own process so that it can be killed.

Run as ``python tests/checkpoint_worker.py MODE FOLDER``:

- ``whole``: 4 epochs without interruption;
- ``killed``: the same fit with skorch's ``Checkpoint`` in ``FOLDER``, killed with
  SIGKILL in the middle of epoch 3 (after 2 of its 5 batches);
- ``resume``: a new process loads the checkpoint and trains the remaining epochs
  with ``partial_fit``, as the user guide says.

``whole`` and ``resume`` pickle the weights, the history's losses and the
parameters to ``FOLDER/MODE.pkl``.
"""

import os
import pickle
import signal
import sys

import numpy as np
import torch
from skorch.callbacks import Callback, Checkpoint

from distributed_worker import problem

EPOCHS = 4


class KillMidEpoch(Callback):
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 3 and len(net.history[-1]["batches"]) == 2:
            os.kill(os.getpid(), signal.SIGKILL)


def estimator(Xc, yc, callbacks=None):
    from sk_l2rw import L2RWClassifier
    from sk_l2rw.modules import MLP

    # Sized by hand: the resumed net is initialized before it sees data.
    return L2RWClassifier(MLP, Xc, yc, module__hidden_layer_sizes=(16,),
                          module__n_features=6, module__n_outputs=3, module__softmax=True,
                          optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                          max_epochs=EPOCHS, batch_size=32, lr=0.05, random_state=7,
                          verbose=0, callbacks=callbacks)


def main(mode, folder):
    torch.set_num_threads(1)
    X, y, Xc, yc = problem()
    if mode == "whole":
        net = estimator(Xc, yc).fit(X, y)
    elif mode == "killed":
        estimator(Xc, yc, [Checkpoint(monitor=None, dirname=folder),
                           KillMidEpoch()]).fit(X, y)
        raise SystemExit("not killed")
    else:
        checkpoint = Checkpoint(monitor=None, dirname=folder)
        net = estimator(Xc, yc, [checkpoint]).initialize()
        net.load_params(checkpoint=checkpoint)
        net.set_params(max_epochs=EPOCHS - len(net.history))
        net.partial_fit(X, y)
    report = dict(weights=net.sample_weights_,
                  train_loss=net.history[:, "train_loss"],
                  clean_loss=net.history[:, "clean_loss"],
                  params={k: v.detach().cpu().numpy().copy()
                          for k, v in net.module_.state_dict().items()})
    with open(os.path.join(folder, f"{mode}.pkl"), "wb") as f:
        pickle.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
