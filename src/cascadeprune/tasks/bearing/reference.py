"""The reference any LLM classifier must beat: a linear classifier on log-FFT magnitudes.

Features: log(1 + |rFFT|) of each per-window-normalised window, standardised with training
statistics; softmax regression with class-balanced loss, trained full-batch with L-BFGS.

Example::

    probe = FFTLinear().fit(ds.x["train"], ds.y["train"], len(ds.classes))
    predictions = probe.predict(ds.x["test"])
"""

from __future__ import annotations

import numpy as np
import torch

from cascadeprune.tasks.bearing.train import class_weights


def log_fft(x: np.ndarray) -> np.ndarray:
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
    return np.log1p(np.abs(np.fft.rfft(x, axis=1))).astype(np.float32)


class FFTLinear:
    def __init__(self, l2: float = 1e-3, iters: int = 200, seed: int = 42):
        self.l2, self.iters, self.seed = l2, iters, seed

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> "FFTLinear":
        f = log_fft(x)
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-6
        feats = torch.from_numpy((f - self.mu) / self.sd)
        target = torch.from_numpy(y)
        torch.manual_seed(self.seed)
        self.linear = torch.nn.Linear(feats.shape[1], n_classes)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y, n_classes))
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.iters, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn(self.linear(feats), target) + self.l2 * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        feats = torch.from_numpy((log_fft(x) - self.mu) / self.sd)
        return self.linear(feats).argmax(-1).numpy()
