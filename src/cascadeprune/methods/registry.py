"""One registry of compression methods: ``--method NAME`` -> :class:`MethodSpec`.

A method is registered once, here, with what the engine needs to run it: how it schedules its cuts
(one per recipe stage, or one for the whole run), its recovery-budget rule, the function that cuts
(``"module:function"``, imported on use, so this module, the config and ``cascadeprune --help`` need
no torch), and the one line that ``--method`` help and the docs print. The config validates
``method`` against this registry and the engine dispatches on it; nothing else lists method names.

Recovery-budget rules:

- ``stages``: each stage recovers with its own ``stages[i].recovery`` budget;
- ``summed``: one recovery with the sum of every stage's budget (the last stage's settings otherwise);
- ``authors``: the summed budget where the method's authors fine-tune and none where they do not
  (``baseline_recovery: budget | none`` in the recipe overrides it).

``cut(model, batches, cfg, stage, target, seed, loss_fn)`` removes units in place until ``model`` has
about ``target`` block parameters; ``stage`` is the recipe stage's index (``schedule="stages"``) or
``None`` (``schedule="once"``, where ``target`` is the run's final target).

Example (a new method is one line)::

    register(MethodSpec("mine", "my schedule", "once", "summed", "mypkg.mine:cut"))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Literal

SCHEDULES = ("stages", "once")
RECOVERY_RULES = ("stages", "summed", "authors")


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the --method name
    summary: str  # one line for --method help and the docs
    schedule: Literal["stages", "once"]  # a cut + recovery per recipe stage, or one cut and one recovery
    recovery: Literal["stages", "summed", "authors"]  # the recovery-budget rule (module docstring)
    cut: str  # "module:function", imported on use
    baseline: bool = False  # a published baseline: brings its own criterion, takes `baseline_recovery`
    label: str = "{granularity}"  # a stage's name in records: {granularity}, {method}, {stage} (1-based), {stages}

    def __post_init__(self):
        if self.schedule not in SCHEDULES or self.recovery not in RECOVERY_RULES or ":" not in self.cut:
            raise ValueError(f"method {self.name!r}: schedule in {SCHEDULES}, recovery in {RECOVERY_RULES}, "
                             f"cut as 'module:function' (got {self.schedule!r}, {self.recovery!r}, {self.cut!r})")

    def cut_fn(self) -> Callable[..., None]:
        module, _, attr = self.cut.partition(":")
        return getattr(importlib.import_module(module), attr)

    def stage_label(self, granularity: str, stage: int, stages: int) -> str:
        return self.label.format(granularity=granularity, method=self.name, stage=stage + 1, stages=stages)


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec``; a second method with the same name is refused."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def names(baseline: bool | None = None) -> tuple[str, ...]:
    """Registered method names in registration order (only baselines, or only non-baselines, if asked)."""
    return tuple(n for n, s in METHODS.items() if baseline is None or s.baseline == baseline)


def get(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"no method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def help_text() -> str:
    """What ``--method`` prints: every method and its line."""
    return "; ".join(f"{s.name}: {s.summary}" for s in METHODS.values())


_ENGINE = "cascadeprune.methods.cascade"
register(MethodSpec("cascade", "layers -> heads -> channels, re-scored and recovered after each stage (the default with a recipe)",
                    "stages", "stages", f"{_ENGINE}:cascade_cut"))
register(MethodSpec("oneshot", "every granularity scored once on the dense model, cut together, one recovery with "
                               "the summed budget", "once", "summed", f"{_ENGINE}:joint_cut", label="{method}"))
register(MethodSpec("simultaneous", "ablation: as many iterations as stages, each cutting every granularity, with "
                                    "the stages' recoveries", "stages", "stages", f"{_ENGINE}:joint_cut",
                    label="all ({stage}/{stages})"))
register(MethodSpec("auto", "the search (docs/auto.md): granularities, criteria, allocation across granularities and "
                            "depth, and recovery recipe chosen on validation within --search-budget; the default "
                            "without a recipe", "once", "summed", "cascadeprune.methods.auto:cut", label="{method}"))
# the published baselines (methods/baselines/): their own criterion and schedule; recovery as their authors do
for _name, _who in (("magnitude", "Li et al. 2017, L1 norm of coupled units, uniform per layer"),
                    ("wanda-sp", "Wanda structured as in FLAP, |W| * ||X||, uniform per layer"),
                    ("llm-pruner", "Ma et al. 2023, Taylor on coupled groups, uniform per layer"),
                    ("flap", "An et al. 2024, fluctuation metric, global, bias compensation"),
                    ("shortgpt", "Men et al. 2024, whole layers by Block Influence")):
    register(MethodSpec(_name, f"published baseline ({_who})", "once", "authors", f"{_ENGINE}:baseline_cut",
                        baseline=True, label="{method}"))
