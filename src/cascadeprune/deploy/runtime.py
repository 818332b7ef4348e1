"""Run a deployed classifier: an export directory through ONNX Runtime, or a classifier directory
through PyTorch (the fallback, and the reference the export is measured against).

The ONNX path imports neither torch nor transformers, so a process that serves or benchmarks an
export carries only ONNX Runtime and numpy, as an edge box would.

Example::

    p = load_predictor("deploy/gpt2-13.8x", threads=1)
    logits = p.logits(np.zeros((2, p.window), np.float32))      # [2, len(p.classes)]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cascadeprune.errors import CascadePruneError

DEPLOY_FORMAT = "cascadeprune-deploy/1"
DEPLOY_FILE = "deploy.json"
ONNX_FILE = "model.onnx"
CLASSIFIER_FILE = "classifier.json"  # a classifier directory's marker (tasks/bearing/classifier.py)
REFERENCE_FILE = "reference.json"  # a reference model's marker (tasks/bearing/cnn.py)
MODEL_MARKERS = (CLASSIFIER_FILE, REFERENCE_FILE)
RUNTIMES = ("onnx", "torch")


def artifact_kind(path: str | Path) -> str:
    """``"export"`` (deploy.json + model.onnx), ``"classifier"`` (classifier.json), or an error."""
    p = Path(path)
    if (p / DEPLOY_FILE).is_file():
        return "export"
    if any((p / m).is_file() for m in MODEL_MARKERS):
        return "classifier"
    what = "does not exist" if not p.exists() else "is neither an export directory (deploy.json) nor a " \
                                                    "classifier directory (classifier.json or reference.json)"
    raise CascadePruneError(f"{path} {what}; give the output of `cascadeprune export` or `cascadeprune train`")


def read_deploy(path: str | Path) -> dict:
    """The export's ``deploy.json``, checked for the keys a runtime needs."""
    f = Path(path) / DEPLOY_FILE
    try:
        info = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CascadePruneError(f"{f}: unreadable ({e})") from None
    if info.get("format") == "gguf":  # a causal LM for llama.cpp (deploy/gguf_export.py), not a classifier
        raise CascadePruneError(f"{path} is a GGUF export of a causal LM: run it with `python -m llama_cpp.server "
                                f"--model {Path(path) / info.get('file', 'model.gguf')}`; bench it with `cascadeprune bench`")
    if info.get("format") != DEPLOY_FORMAT:
        raise CascadePruneError(f"{f}: format must be {DEPLOY_FORMAT!r}, got {info.get('format')!r}")
    missing = [k for k in ("model_id", "input", "output", "window", "sample_rate", "classes") if k not in info]
    if missing:
        raise CascadePruneError(f"{f}: missing keys {missing}")
    if not (Path(path) / ONNX_FILE).is_file():
        raise CascadePruneError(f"{Path(path) / ONNX_FILE}: missing (the export is incomplete)")
    return info


class Predictor:
    """Class scores for windows of raw vibration samples; ``logits(x)`` takes float32 [batch, window]."""

    model_id: str
    window: int
    sample_rate: float
    classes: tuple[str, ...]
    runtime: str
    path: Path
    signal_quality: dict | None = None  # deploy.json's training statistics and thresholds (exports only)

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x).astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.window:
            raise CascadePruneError(f"input must be float32 [batch, {self.window}], got shape {list(x.shape)}")
        return np.ascontiguousarray(x)


class OnnxPredictor(Predictor):
    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        info = read_deploy(path)
        self.path, self.info, self.runtime = path, info, "onnx"
        self.model_id, self.window = info["model_id"], int(info["window"])
        self.sample_rate, self.classes = float(info["sample_rate"]), tuple(info["classes"])
        self.input_name, self.output_name = info["input"], info["output"]
        self.signal_quality = info.get("signal_quality")
        self.session = onnx_session(path / ONNX_FILE, threads)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: self.check_input(x)})[0]


def onnx_session(model_file: Path | bytes, threads: int = 1, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session with a fixed thread count (intra-op ``threads``, inter-op 1);
    ``model_file`` is a path or a serialized model."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # warnings about unused initializers are noise for a user
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    try:
        src = model_file if isinstance(model_file, bytes) else str(model_file)
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types; say which file failed
        where = "serialized model" if isinstance(model_file, bytes) else model_file
        raise CascadePruneError(f"{where}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None


class TorchPredictor(Predictor):
    def __init__(self, path: Path, threads: int = 1):
        import torch

        from cascadeprune.storage import load_model

        torch.set_num_threads(threads)
        model = load_model(path)
        if not hasattr(model, "window") or not hasattr(model, "classes"):
            raise CascadePruneError(f"{path} is not a classifier directory (train one with `cascadeprune train`)")
        self.path, self.model, self.runtime = path, model.eval(), "torch"
        self.model_id = f"{path.resolve().name}"
        self.window = int(model.window)
        self.sample_rate = float(model.meta.get("sample_rate", 12000.0))
        self.classes = tuple(model.classes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(self.check_input(x))).numpy()


def load_predictor(path: str | Path, threads: int = 1, runtime: str | None = None) -> Predictor:
    """An export directory (ONNX Runtime) or a classifier directory (PyTorch).

    ``runtime`` forces one: ``"torch"`` on an export is refused (the ONNX file is what it holds),
    ``"onnx"`` on a classifier directory is refused with the command that makes one."""
    p = Path(path)
    kind = artifact_kind(p)
    if runtime not in (None, *RUNTIMES):
        raise CascadePruneError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if threads < 1:
        raise CascadePruneError(f"threads must be >= 1, got {threads}")
    if kind == "export":
        if runtime == "torch":
            raise CascadePruneError(f"{path} is an ONNX export; the torch runtime needs the classifier directory "
                                    f"it came from (deploy.json: source.path)")
        return OnnxPredictor(p, threads)
    if runtime == "onnx":
        raise CascadePruneError(f"{path} is a classifier directory; make an ONNX artifact first with "
                                f"`cascadeprune export {path} --out DIR`")
    return TorchPredictor(p, threads)


def pin_threads(threads: int) -> None:
    """Fix the thread pools of every numeric library before it is imported (fresh processes only)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def model_window(model: str | Path) -> tuple[int, float]:
    """(window, sample rate) of an export (deploy.json) or a classifier directory (loads it)."""
    if artifact_kind(model) == "export":
        info = read_deploy(model)
        return int(info["window"]), float(info["sample_rate"])
    from cascadeprune.storage import load_model

    clf = load_model(Path(model))
    return int(clf.window), float(clf.meta.get("sample_rate", 12000.0))
