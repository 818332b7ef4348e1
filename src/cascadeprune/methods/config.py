"""The compression configuration: dataclasses that YAML recipes map onto one to one.

Unknown keys are rejected with the path of the key at fault. Example recipe::

    method: cascade            # or oneshot
    seed: 42
    calibration: {mix: {cwru-4class-crossload: 0.8, "cwru-4class-crossload@snr=0": 0.2}, n: 256}
    stages:
      - {granularity: layers,   criterion: lcr,      share: 0.6, recovery: {method: lora, steps: 100}}
      - {granularity: heads,    criterion: wanda_sp, share: 0.2, recovery: {method: lora, steps: 100}}
      - {granularity: channels, criterion: wanda_sp, share: 0.2, steps: 2, recovery: {method: lora, steps: 300}}

``load_recipe(path)`` returns a :class:`CompressConfig` (the ratio comes from the command line
unless the recipe sets it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cascadeprune.errors import CascadePruneError

GRANULARITIES = ("layers", "heads", "channels")
DEFAULT_CRITERION = {"layers": "lcr", "heads": "wanda_sp", "channels": "wanda_sp"}
# Share of the total parameter reduction per stage (normalised; a stage that cannot reach its
# cumulative target, e.g. whole layers, leaves the rest to the next). Chosen from the measured
# sweep in benchmarks/results/cascade.jsonl (methods cascade-shares-*, gpt2-10m at 13.8x, 3 seeds):
# layer-heavy splits won (0.6/0.2/0.2: 99.72 +- 0.28 %, vs 98.01 +- 2.15 % for 0.3/0.2/0.5 and
# 98.53 +- 1.39 % with no layer removal). See benchmarks/README.md, "Budget split".
DEFAULT_SHARE = {"layers": 0.6, "heads": 0.2, "channels": 0.2}
PAPER_EPOCHS = {"layers": 10.0, "heads": 10.0, "channels": 30.0}  # the paper's recovery budgets


class RecipeError(CascadePruneError):
    """A recipe or configuration value is invalid; the message names the key."""


@dataclass
class RecoveryConfig:
    method: str = "lora"  # lora | full | distill | none
    epochs: float | None = None  # default: the paper's 10 / 10 / 30 for layers / heads / channels
    steps: int | None = None  # wins over epochs when set
    rank: int = 4
    alpha: int = 16
    targets: str = "attention"  # LoRA targets: attention | all
    # Train the front end (patch/spectrum embedding) during recovery. The head always trains; with
    # False and method lora, only the adapters and the head train (the paper's recipe taken strictly).
    train_frontend: bool = True
    lr: float = 1e-3
    batch_size: int = 32
    distill_alpha: float = 0.5
    temperature: float = 2.0
    speed_jitter: float = 0.03  # time-stretch recovery windows by up to +-3 % (as `train` does by default)
    # Cross-load validation: recover on the other training loads and keep the state that scores best
    # on this one (None: validate on the time-split windows of all training loads).
    holdout_load: float | None = None
    # Which state recovery ends with: the one with the best validation accuracy (checked once per epoch and
    # at the end; ties keep the earlier) or the last one. With holdout_load set, always the best.
    keep: str = "best_val"  # best_val | last
    device: str = "cpu"  # where recovery trains ("cuda" on a GPU); pruning and scoring stay on the CPU

    def check(self, where: str) -> None:
        if self.method not in ("lora", "full", "distill", "none"):
            raise RecipeError(f"{where}.method: {self.method!r} is not one of lora, full, distill, none")
        if self.keep not in ("best_val", "last"):
            raise RecipeError(f"{where}.keep: {self.keep!r} is not best_val or last")
        from cascadeprune.tasks.bearing.train import resolve_device

        try:
            resolve_device(self.device)
        except CascadePruneError as e:
            raise RecipeError(f"{where}.device: {e}") from None


@dataclass
class StageConfig:
    granularity: str
    criterion: str | None = None
    share: float | None = None
    steps: int = 1  # iterative removal steps with re-scoring in between
    mode: str = "grouped"  # grouped | naive
    # channels only: "global" ranks every layer's channels together; "uniform" takes the same share from every layer
    allocation: str = "global"
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)

    def check(self, where: str) -> None:
        if self.granularity not in GRANULARITIES:
            raise RecipeError(f"{where}.granularity: {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        if self.mode not in ("grouped", "naive"):
            raise RecipeError(f"{where}.mode: {self.mode!r} is not grouped or naive")
        if self.steps < 1:
            raise RecipeError(f"{where}.steps must be >= 1")
        from cascadeprune.methods.select import ALLOCATIONS

        if self.allocation not in ALLOCATIONS:
            raise RecipeError(f"{where}.allocation: {self.allocation!r} is not {' or '.join(ALLOCATIONS)}")
        if self.allocation != "global" and self.granularity != "channels":
            raise RecipeError(f"{where}.allocation: only a channels stage can set it (this one is {self.granularity})")
        self.criterion = self.criterion or DEFAULT_CRITERION[self.granularity]
        from cascadeprune.importance import names

        if self.criterion not in names(self.granularity):
            raise RecipeError(f"{where}.criterion: no {self.granularity} criterion {self.criterion!r} "
                              f"(choose {', '.join(names(self.granularity))})")
        self.recovery.check(f"{where}.recovery")
        if self.recovery.epochs is None and self.recovery.steps is None:
            self.recovery.epochs = PAPER_EPOCHS[self.granularity]


@dataclass
class CalibrationConfig:
    mix: dict[str, float] | None = None  # None: the task's own protocol
    n: int = 256
    batch_size: int = 32
    seed: int = 0


@dataclass
class CompressConfig:
    ratio: float = 0.0
    method: str = "cascade"  # cascade | oneshot | simultaneous
    seed: int = 42
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig(g) for g in GRANULARITIES])
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    protect_ends: bool = True
    max_channel_fraction: float = 0.97  # at most this share of a layer's FFN channels go per removal step

    def check(self, require_ratio: bool = True) -> "CompressConfig":
        if (require_ratio or self.ratio) and (not self.ratio or self.ratio < 1):
            raise RecipeError(f"ratio must be >= 1 (dense block params / pruned), got {self.ratio}")
        if self.method not in ("cascade", "oneshot", "simultaneous"):
            raise RecipeError(f"method: {self.method!r} is not cascade, oneshot or simultaneous")
        if not self.stages:
            raise RecipeError("stages: at least one stage is needed")
        seen = set()
        for i, st in enumerate(self.stages):
            st.check(f"stages[{i}]")
            seen.add(st.granularity)
        shares = [st.share if st.share is not None else DEFAULT_SHARE[st.granularity] for st in self.stages]
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            raise RecipeError(f"stages: shares must be >= 0 with a positive sum, got {shares}")
        for st, s in zip(self.stages, shares):
            st.share = s / sum(shares)  # normalised: the stages together reach the ratio
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RecipeError(f"{where or 'recipe'}: unknown key(s) {unknown} (allowed: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        if name == "stages":
            if not isinstance(value, list):
                raise RecipeError(f"{path}: expected a list of stages")
            kwargs[name] = [_build(StageConfig, v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif name == "recovery":
            kwargs[name] = _build(RecoveryConfig, value, path)
        elif name == "calibration":
            kwargs[name] = _build(CalibrationConfig, value, path)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise RecipeError(f"{where or 'recipe'}: {e}") from None


def config_from_dict(data: dict) -> CompressConfig:
    return _build(CompressConfig, data or {}, "")


def load_recipe(path: str | Path) -> CompressConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    try:
        return config_from_dict(data or {}).check(require_ratio=False)
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None
