"""The one place where registries are filled with what lives above them.

Layers register nothing by being imported: the layout verifier (surgery, above arch), the tasks'
directory formats (tasks, above storage) and the tasks themselves (above the engine) are wired here,
explicitly, by ``"module:function"`` references that are imported only when used. ``cascadeprune``
calls :func:`wire` when it is imported (any ``cascadeprune.*`` import runs it first), and it imports
no torch, so ``cascadeprune serve`` of an ONNX artifact stays torch-free. Methods and criteria are
listed in their own registries (``methods/registry.py``, ``importance/__init__.py``).

Example (a new task and its format)::

    register_task("mytask", "mypkg.task:from_spec")
    register_format(DirectoryFormat("mypkg-model/1", "mypkg.json", "mypkg.io:load_dir"))
"""

from __future__ import annotations

_wired = False


def wire() -> None:
    """Fill the registries once (idempotent)."""
    global _wired
    if _wired:
        return
    _wired = True
    from cascadeprune.arch.recognise import register_verifier
    from cascadeprune.storage.formats import register_format
    from cascadeprune.task import register_task
    from cascadeprune.tasks.bearing.format import CLASSIFIER_FORMAT, REFERENCE_FORMAT

    # recognised layouts are checked with surgery's pruning-equals-masking test
    register_verifier("cascadeprune.surgery.verify:verify_spec")
    register_format(CLASSIFIER_FORMAT)
    register_format(REFERENCE_FORMAT)
    register_task("lm", "cascadeprune.tasks:lm_task")
    register_task("bearing", "cascadeprune.tasks:bearing_task", options="cascadeprune.tasks.bearing.options:RecoveryOptions")
    from cascadeprune.methods.sia_gate import register_sia_check

    register_sia_check("cascadeprune.sia.measure:measure")  # method auto's granularity gate (sia sits above the core)
