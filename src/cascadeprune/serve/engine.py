"""One inference thread that batches whatever windows are waiting (up to ``max_batch``).

No artificial wait: a lone request runs at once as batch 1; under load the queue fills while the
model runs and the next batch takes everything waiting, so batching costs no latency when idle.
ONNX Runtime's own threads (``--threads``) parallelise inside each batch.

Example::

    engine = Engine(predictor, max_batch=16)
    probs = engine.submit(windows).result()   # float64 [n, n_classes], rows sum to 1
    engine.close()                            # finishes what was accepted, then stops
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from cascadeprune.errors import CascadePruneError

_STOP = object()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Engine:
    """Thread-safe front of a predictor: ``submit`` from any thread, results as futures."""

    def __init__(self, predictor, max_batch: int = 16, on_batch=None):
        if max_batch < 1:
            raise CascadePruneError(f"--max-batch must be at least 1, got {max_batch}")
        self.predictor, self.max_batch, self.on_batch = predictor, max_batch, on_batch
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()  # orders submit against close: nothing is accepted after _STOP
        self._thread = threading.Thread(target=self._run, name="cascadeprune-engine", daemon=True)
        self._thread.start()

    def submit(self, windows: np.ndarray) -> Future:
        """Queue float32 [n, window]; the future gets probabilities [n, n_classes] (or the error)."""
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise CascadePruneError("the service is shutting down")
            self._q.put((windows, fut))
        return fut

    def queued(self) -> int:
        """Requests waiting for the model (not counting the batch it runs now); the page's queue depth."""
        return self._q.qsize()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, finish every accepted window, join the thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._q.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending, stop = None, False
        while not stop:
            item = pending or self._q.get()
            pending = None
            if item is _STOP:
                break
            batch = [item]
            n = len(item[0])
            while n < self.max_batch:  # take what is already waiting, never wait for more
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                if n + len(nxt[0]) > self.max_batch:
                    pending = nxt
                    break
                batch.append(nxt)
                n += len(nxt[0])
            self._infer(batch)

    def _infer(self, batch: list) -> None:
        x = np.concatenate([w for w, _ in batch]) if len(batch) > 1 else batch[0][0]
        try:
            t0 = time.perf_counter()
            # one request may hold more windows than max_batch: run it in max_batch slices
            probs = np.concatenate([softmax(np.asarray(self.predictor.logits(x[i:i + self.max_batch])))
                                    for i in range(0, len(x), self.max_batch)])
            if self.on_batch:
                self.on_batch(len(x), time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - every waiting caller must hear about it
            for _, fut in batch:
                fut.set_exception(e)
            return
        i = 0
        for w, fut in batch:
            fut.set_result(probs[i:i + len(w)])
            i += len(w)
