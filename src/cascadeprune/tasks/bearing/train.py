"""Train and evaluate a vibration classifier.

Deterministic: a seed fixes initialisation of the front end and head and the data order.
Class-balanced loss (the normal class has ~70 training windows against ~1,800 per fault class on
the shared CWRU subset). Early stopping on validation accuracy restores the best weights
(``keep="best"``); ``keep="last"`` trains the whole budget and keeps the final weights, for when the
validation split cannot choose (few-shot adaptation validates on the source domain only).

Example::

    report = train_classifier(clf, ds, TrainConfig(epochs=10, seed=42))
    metrics = evaluate(clf, ds, "test")
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from cascadeprune.devices import resolve_device  # noqa: F401  (also imported from here)
from cascadeprune.tasks.bearing.protocols import Dataset


@dataclass
class TrainConfig:
    epochs: float = 20.0  # fractional epochs allowed; max_steps wins when set
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    patience: int = 4  # evaluations without validation improvement before stopping
    eval_every: int | None = None  # steps between validations; default once per epoch
    seed: int = 42
    grad_clip: float = 1.0
    balanced: bool = True
    speed_jitter: float = 0.0  # time-stretch each training window by up to +-this fraction (load = speed)
    noise_snr_db: tuple[float, float] | None = None  # add white noise at an SNR drawn from this range
    device: str = "cpu"  # where the training steps run ("cuda" on a GPU); the model comes back where it was
    # "best": early stopping (patience) and the best-validation weights come back; "last": every step of the
    # budget runs and the final weights stay (validation is only recorded)
    keep: str = "best"

    def __post_init__(self):
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep={self.keep!r}: choose 'best' or 'last'")


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Physically motivated augmentation: a load change is a shaft-speed change, which stretches
    every speed-locked component in time; plant noise is broadband."""
    if cfg.speed_jitter:
        n = x.shape[1]
        scale = 1 + (torch.rand(x.shape[0], 1, generator=gen) * 2 - 1) * cfg.speed_jitter
        pos = ((torch.arange(n) - n / 2) * scale + n / 2).clamp(0, n - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=n - 1)
        frac = pos - lo
        x = x.gather(1, lo) * (1 - frac) + x.gather(1, hi) * frac
    if cfg.noise_snr_db is not None:
        lo_db, hi_db = cfg.noise_snr_db
        snr = lo_db + torch.rand(x.shape[0], 1, generator=gen) * (hi_db - lo_db)
        power = x.pow(2).mean(dim=1, keepdim=True)
        x = x + torch.randn(x.shape, generator=gen) * (power / 10 ** (snr / 10)).sqrt()
    return x


def _batches(n: int, batch: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    for i in range(0, n - batch + 1 if n >= batch else n, batch):
        yield order[i : i + batch]


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def train_classifier(model: nn.Module, ds: Dataset, cfg: TrainConfig, progress: bool = True,
                     desc: str = "train", teacher: nn.Module | None = None, distill_alpha: float = 0.5,
                     temperature: float = 2.0) -> dict:
    """Train the parameters of ``model`` that require grad; returns history and timings.

    With a ``teacher``, the loss is (1 - alpha) * CE + alpha * T^2 * KL(teacher || student) on
    temperature-softened logits (logit distillation)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = torch.from_numpy(ds.x["train"]), torch.from_numpy(ds.y["train"])
    if len(x) == 0:
        raise ValueError(f"{ds.protocol}: no training windows")
    dev, home = resolve_device(cfg.device), next(model.parameters()).device
    model.to(dev)
    teacher_home = next(teacher.parameters()).device if teacher is not None else None
    if teacher is not None:
        teacher.to(dev)
    steps_per_epoch = max(1, len(x) // cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    # with keep="last" validation decides nothing, so by default it runs once, at the end (a few-shot
    # adaptation has one step per epoch, and validating a 12-layer model every step costs ~17 s on 2 cores)
    eval_every = cfg.eval_every or (total if cfg.keep == "last" else steps_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(ds.y["train"], len(ds.classes)).to(dev) if cfg.balanced else None)
    history, best, best_state, bad, step = [], -1.0, None, 0, 0
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    model.train()
    while step < total:
        for idx in _batches(len(x), cfg.batch_size, gen):
            xb = augment(x[idx], cfg, gen).to(dev)  # augmentation on the CPU: the same draws on every device
            logits = model(xb)
            loss = loss_fn(logits, y[idx].to(dev))
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(xb)
                kd = nn.functional.kl_div(nn.functional.log_softmax(logits / temperature, -1),
                                          nn.functional.log_softmax(t_logits / temperature, -1),
                                          reduction="batchmean", log_target=True) * temperature**2
                loss = (1 - distill_alpha) * loss + distill_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", best_val=f"{max(best, 0):.3f}", refresh=False)
            if step % eval_every == 0 or step == total:
                val = evaluate(model, ds, "val")["accuracy"] if len(ds.x["val"]) else float("nan")
                history.append({"step": step, "loss": round(loss.item(), 5), "val_accuracy": val})
                model.train()
                if val > best:
                    best, bad = val, 0
                    best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
                else:
                    bad += 1
                if bad >= cfg.patience and cfg.keep == "best":
                    total = step  # early stop
            if step >= total:
                break
    bar.close()
    if best_state is not None and cfg.keep == "best":
        model.load_state_dict(best_state)
    model.to(home)
    if teacher is not None:
        teacher.to(teacher_home)
    model.eval()
    kept = best if cfg.keep == "best" or not history else history[-1]["val_accuracy"]
    return {"steps": step, "best_val_accuracy": best, "val_accuracy": kept, "history": history,
            "wall_s": time.perf_counter() - t0, "config": asdict(cfg)}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model(torch.from_numpy(x[i : i + batch_size]).to(dev)).argmax(-1).cpu().numpy()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes, loads: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1 (over classes present in y_true), per-load accuracy, confusion matrix."""
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    f1s = []
    for c in range(k):
        if cm[c].sum() == 0:
            continue
        tp = cm[c, c]
        prec = tp / cm[:, c].sum() if cm[:, c].sum() else 0.0
        rec = tp / cm[c].sum()
        f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    out = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "n": int(len(y_true)),
        "classes": list(classes),
        "confusion": cm.tolist(),
    }
    if loads is not None:
        out["per_load_accuracy"] = {f"{l:g}": float((y_true[loads == l] == y_pred[loads == l]).mean())
                                    for l in np.unique(loads)}
    return out


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray, batch_size: int = 128) -> torch.Tensor:
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model(torch.from_numpy(x[i : i + batch_size]).to(dev)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def evaluate(model: nn.Module, ds: Dataset, split: str = "test") -> dict:
    """metrics() plus ``nll``: the mean cross-entropy of the true class (a tie-breaker where accuracies tie)."""
    logits = _logits(model, ds.x[split])
    if not len(logits):
        return metrics(ds.y[split], np.zeros(0, dtype=np.int64), ds.classes, ds.load[split])
    y = torch.from_numpy(ds.y[split]).long()
    out = metrics(ds.y[split], logits.argmax(-1).numpy(), ds.classes, ds.load[split])
    out["nll"] = float(nn.functional.cross_entropy(logits, y))
    return out
