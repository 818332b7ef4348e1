"""The bearing task's own workflows behind ``cascadeprune train`` and ``cascadeprune eval``: build or read a
classifier, train it on a protocol, evaluate it. The CLI parses flags and prints; the bearing-specific work
is here.

    summary = train_workflow("synthetic", "gpt2-tiny", "runs/clf", max_steps=50)
    metrics = eval_workflow("runs/clf", "synthetic")
"""

from __future__ import annotations

from pathlib import Path

from cascadeprune.errors import CascadePruneError


def windows(window: int, stride: int, eval_stride: int | None):
    from cascadeprune.tasks.bearing.protocols import WindowConfig

    return WindowConfig(window=window, stride=stride, eval_stride=eval_stride)


def train_workflow(task: str, backbone: str | None, out: str, data_dir: str | None = None, lora: bool = False,
                   lora_rank: int = 4, lora_alpha: int = 16, epochs: float = 10.0, max_steps: int | None = None,
                   batch_size: int = 32, lr: float | None = None, seed: int = 42, patch: int | None = None,
                   window: int | None = None, stride: int = 512, patience: int = 4, features: str | None = None,
                   global_token: bool | None = None, speed_jitter: float = 0.03, overwrite: bool = False,
                   device: str = "cpu", init: str | None = None, keep: str = "best", warmup_steps: int = 50) -> dict:
    """Train a classifier on ``task``: a fresh one (``backbone``), or one that starts from the trained
    classifier directory ``init`` (few-shot adaptation, fine-tuning), which is read and never written.
    Saves it to ``out`` and returns the summary (``started``: the init's own figures, when there is one)."""
    from cascadeprune.recovery import LoRAConfig, add_lora, merge_lora
    from cascadeprune.storage import save_model
    from cascadeprune.tasks.bearing.cnn import REFERENCE_BACKBONES
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import TrainConfig, evaluate, train_classifier

    if backbone is None and init is None:
        raise CascadePruneError("give --backbone (a fresh model) or --init DIR (a trained classifier to start from)")
    if Path(out).exists() and any(Path(out).iterdir()) and not overwrite:
        raise CascadePruneError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    started = None
    if init is not None:
        clf = init_classifier(init, backbone, window, patch, features, global_token)
        window, backbone = clf.window, clf.meta.get("backbone") or backbone or type(clf).__name__
    if lora and (getattr(clf, "reference", False) if init is not None else backbone in REFERENCE_BACKBONES):
        raise CascadePruneError(f"--lora: {backbone} is a reference CNN trained in full; drop --lora")
    ds = build_dataset(task, data_dir, windows(window or 1024, stride, None))
    if init is not None:
        if tuple(ds.classes) != clf.classes:
            raise CascadePruneError(f"--init {init} predicts classes {list(clf.classes)} but {task} has "
                                    f"{list(ds.classes)}")
        before = {"val": evaluate(clf, ds, "val"), "test": evaluate(clf, ds, "test")}
        started = {"dir": str(Path(init).resolve()), "protocol": clf.meta.get("protocol"),
                   "val_accuracy": before["val"]["accuracy"], "test_accuracy": before["test"]["accuracy"],
                   "test_macro_f1": before["test"]["macro_f1"]}
        if "init" in clf.meta:  # a chain of adaptations: keep where the init itself started
            started["init"] = clf.meta["init"]
        clf.meta.update(protocol=task, init=started)
        clf.meta.pop("test_accuracy", None)  # the init's own figure, on its own protocol
    else:
        clf = new_classifier(task, backbone, ds.classes, window or 1024, patch, features, global_token, seed)
    if lora:
        clf = add_lora(clf, LoRAConfig(rank=lora_rank, alpha=lora_alpha))
    cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, seed=seed, patience=patience,
                      speed_jitter=speed_jitter, device=device, keep=keep, warmup_steps=warmup_steps,
                      lr=lr if lr is not None else (1e-3 if lora else 5e-4))
    report = train_classifier(clf, ds, cfg, desc=f"train {backbone} on {task}" + (f" from {init}" if init else ""))
    if lora:
        clf = merge_lora(clf)
    test = evaluate(clf, ds, "test")
    clf.meta.update(train={"steps": report["steps"], "wall_s": round(report["wall_s"], 1), "lora": lora,
                           "best_val_accuracy": report["best_val_accuracy"], "val_accuracy": report["val_accuracy"],
                           **cfg.__dict__},
                    test_accuracy=test["accuracy"])
    save_model(clf, out, overwrite=overwrite)
    summary = {"out": out, "steps": report["steps"], "wall_s": report["wall_s"],
               "val_accuracy": report["val_accuracy"], "test": test}
    if init is not None:
        summary["init"] = clf.meta["init"]
    return summary | {"started": started}


def new_classifier(task: str, backbone: str, classes, window: int, patch: int | None, features: str | None,
                   global_token: bool | None, seed: int):
    """A new classifier for ``task``: the reference CNN, or front end + ``backbone`` + head."""
    import torch

    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.cnn import REFERENCE_BACKBONES, build_reference

    torch.manual_seed(seed)
    if backbone in REFERENCE_BACKBONES:
        return build_reference(backbone, classes, window, meta={"protocol": task, "backbone": backbone})
    front = FrontEndConfig(window=window, patch=32 if patch is None else patch, features=features or "spectrum",
                           global_token=True if global_token is None else global_token)
    return VibrationClassifier(load_backbone(backbone, max_positions=max(128, front.tokens), seed=seed), classes,
                               front, meta={"protocol": task, "backbone": backbone})


def init_classifier(init: str, backbone: str | None, window: int | None, patch: int | None,
                    features: str | None, global_token: bool | None):
    """The trained classifier in ``init``, checked against the flags given; each mismatch is named in a
    one-line error, because training a model whose input or output the task does not match is a silent
    failure (the classes are checked against the task by the caller once the windows are built)."""
    from cascadeprune import load_model
    from cascadeprune.storage.formats import format_of
    from cascadeprune.tasks.bearing.classifier import FORMAT, VibrationClassifier
    from cascadeprune.tasks.bearing.cnn import FORMAT as REFERENCE_FORMAT

    path = Path(init)
    if not path.is_dir():
        raise CascadePruneError(f"--init {init}: no such directory (give a classifier written by `cascadeprune train`)")
    fmt = format_of(path)
    if fmt is None or fmt.name not in (FORMAT, REFERENCE_FORMAT):
        raise CascadePruneError(f"--init {init}: not a classifier directory (no classifier.json or reference.json; "
                                f"train one with `cascadeprune train`)")
    clf = load_model(path)
    if not isinstance(clf, VibrationClassifier) and not getattr(clf, "reference", False):
        raise CascadePruneError(f"--init {init}: not a classifier directory")
    recorded = clf.meta.get("backbone")
    if backbone is not None and backbone != recorded:
        raise CascadePruneError(f"--backbone {backbone} disagrees with --init {init}, a "
                                f"{recorded or 'classifier that records no'} backbone; drop --backbone")
    if window is not None and window != clf.window:
        raise CascadePruneError(f"--init {init} takes windows of {clf.window} samples; --window {window} differs")
    given = {"patch": patch, "features": features, "global_token": global_token}
    for name, value in given.items():
        if value is None:
            continue
        flag = "--no-global-token" if name == "global_token" else f"--{name} {value}"
        if getattr(clf, "reference", False):
            raise CascadePruneError(f"--init {init} is a {recorded} reference on raw windows; {flag} does not apply")
        have = getattr(clf.frontend.cfg, name)
        if value != have:
            raise CascadePruneError(f"--init {init} has front end {name}={have}; {flag} differs")
    return clf


def eval_workflow(model: str, task: str, data_dir: str | None = None, snr_db: float | None = None,
                  split: str = "test", noise_seed: int = 0) -> dict:
    """A classifier directory evaluated on a protocol's ``split`` (optionally with noise at ``snr_db``)."""
    from cascadeprune import load_model
    from cascadeprune.tasks.bearing.classifier import VibrationClassifier
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import evaluate

    clf = load_model(model)
    if not isinstance(clf, VibrationClassifier) and not getattr(clf, "reference", False):
        raise CascadePruneError(f"{model} is not a classifier directory (train one with `cascadeprune train`)")
    w = clf.window
    ds = build_dataset(task, data_dir, windows(w, w // 2, None), snr_db=snr_db, noise_seed=noise_seed,
                       splits=(split,))
    if tuple(ds.classes) != clf.classes:
        raise CascadePruneError(f"{model} predicts classes {list(clf.classes)} but {task} has {list(ds.classes)}")
    return evaluate(clf, ds, split) | {"protocol": task, "split": split, "snr_db": snr_db}
