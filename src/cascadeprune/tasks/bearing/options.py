"""The bearing task's own recovery options: ``stages[i].recovery.task`` in a recipe, validated here
(unknown keys refused), read by :meth:`BearingTask.train`. Torch-free: the CLI checks a recipe with it
before any model is loaded.

Example recipe stage::

    - {granularity: heads, recovery: {method: lora, steps: 100, task: {speed_jitter: 0.0, holdout_load: 1}}}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecoveryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # time-stretch recovery windows by up to +-this fraction (a load change is a speed change)
    speed_jitter: float = Field(0.03, ge=0)
    # recover on the other training loads and keep the state best on this one
    holdout_load: float | None = None
    # train the front end (patch/spectrum embedding) during recovery; the head always trains. With False
    # and method lora, only the adapters and the head train (the paper's recipe taken strictly)
    train_frontend: bool = True
