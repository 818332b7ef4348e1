"""From checked windows to answers, shared by HTTP and MQTT: signal quality first, then the model.

Each window is checked (:mod:`cascadeprune.deploy.quality`); a window with a sensor fault gets
``{"label": null, "sensor_fault": {"kind", "statistic", "value", "threshold", "message"}}`` and is
never shown to the model; the others go to the engine and get ``{"label", "probabilities"}``.
Answers keep the order of the windows.

Example::

    d = Diagnoser(predictor, engine, metrics, thresholds)
    answers = d.submit(windows).result()   # [{"label": "inner", "probabilities": {...}}, {"label": None, ...}]
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from cascadeprune.deploy.quality import check_windows


def predictions(probs, classes) -> list[dict]:
    """One {"label", "probabilities"} per row; probabilities rounded to 6 decimals (readable, and finer
    than any decision made on them)."""
    return [{"label": classes[int(p.argmax())], "probabilities": {c: round(float(v), 6) for c, v in zip(classes, p)}}
            for p in probs]


def sensor_fault_answer(fault: dict) -> dict:
    return {"label": None, "sensor_fault": fault}


class Diagnoser:
    """``thresholds=None`` switches the signal check off (``serve --no-signal-check``)."""

    def __init__(self, predictor, engine, metrics, thresholds: dict | None):
        self.engine, self.metrics, self.thresholds = engine, metrics, thresholds
        self.classes = tuple(predictor.classes)

    def check(self, x: np.ndarray) -> list[dict | None]:
        if self.thresholds is None:
            return [None] * len(x)
        faults = check_windows(x, self.thresholds)
        for f in faults:
            if f is not None:
                self.metrics.sensor_faults.labels(kind=f["kind"]).inc()
        return faults

    def submit(self, x: np.ndarray) -> Future:
        """A future of one answer per window; raises at once (CascadePruneError) when the engine
        refuses work (shutting down). A model failure is the future's exception."""
        faults = self.check(x)
        ok = [i for i, f in enumerate(faults) if f is None]
        out: Future = Future()
        if not ok:  # nothing for the model: answer now
            out.set_result([sensor_fault_answer(f) for f in faults])
            return out
        inner = self.engine.submit(x if len(ok) == len(x) else x[ok])

        def merge(f: Future) -> None:
            if f.exception() is not None:
                out.set_exception(f.exception())
                return
            good = iter(predictions(f.result(), self.classes))
            out.set_result([next(good) if fault is None else sensor_fault_answer(fault) for fault in faults])

        inner.add_done_callback(merge)
        return out
