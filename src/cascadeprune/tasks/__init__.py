"""Tasks that compressed models are measured on, behind the :class:`cascadeprune.task.Task` interface.

``get_task(spec, model, source)`` builds one from a command-line spec:

- ``lm``, ``lm:prose,code``, ``lm:code@seq=64`` — a causal LM on the shipped multi-domain corpus
  (:mod:`cascadeprune.tasks.lm`);
- any other name is a bearing protocol (``cwru-4class-crossload``, ``synthetic``, ...) for a vibration
  classifier (:mod:`cascadeprune.tasks.bearing`).

Importing this package also registers the tasks' directory formats with storage (the classifier
directory), which is how ``cascadeprune.load_model(DIR)`` reads them.

Example::

    task = get_task("lm:prose,code", model, source="smollm2-135m")
"""

from __future__ import annotations

from typing import Callable

from cascadeprune.storage.formats import register_format
from cascadeprune.tasks.bearing.format import CLASSIFIER_FORMAT, REFERENCE_FORMAT

register_format(CLASSIFIER_FORMAT)
register_format(REFERENCE_FORMAT)

TASKS: dict[str, Callable] = {}


def register_task(prefix: str, factory: Callable) -> None:
    """``factory(spec, model, source, data_dir) -> Task`` for specs ``prefix`` or ``prefix:...``."""
    if prefix in TASKS:
        raise ValueError(f"task {prefix!r} is already registered")
    TASKS[prefix] = factory


def _lm(spec, model, source=None, data_dir=None):
    from cascadeprune.tasks.lm.task import LMTask

    return LMTask.from_spec(spec, model, source=source)


def _bearing(spec, model, source=None, data_dir=None):
    from cascadeprune.tasks.bearing.task import BearingTask

    return BearingTask.for_model(spec.removeprefix("bearing:"), model, data_dir)


register_task("lm", _lm)
register_task("bearing", _bearing)


def task_kind(spec: str) -> str:
    """The registered prefix ``spec`` belongs to (a bare protocol name is a bearing task)."""
    prefix = spec.split(":", 1)[0].split("@", 1)[0]
    return prefix if prefix in TASKS else "bearing"


def get_task(spec: str, model, source=None, data_dir=None):
    return TASKS[task_kind(spec)](spec, model, source=source, data_dir=data_dir)
