"""Export a classifier directory to the artifact a plant deploys: ``model.onnx`` + ``deploy.json``.

The graph is the whole inference path, raw vibration samples in (``signal``, float32
[batch, window], dynamic batch) and class scores out (``logits``, float32 [batch, classes]):
per-window normalisation, the spectrum and patch projections, the (pruned, possibly
non-uniform) transformer blocks, pooling and the head. The classifier's backbone has no token
embedding table beyond one row and no LM head, so nothing unused is shipped.

Export is refused unless ONNX Runtime reproduces PyTorch on real windows of the classifier's own
protocol: argmax agreement 100 % and max |delta logit| <= 1e-4 on at least 256 windows. With
``int8="dynamic"`` (or ``True``) the graph is quantized with ONNX Runtime's dynamic quantization
(MatMul weights to int8, activations quantized per call from their own range); ``int8="static"``
quantizes activations too, with fixed ranges calibrated on training windows of the protocol
(QDQ format). Either way the int8 test accuracy is recorded beside fp32's.

``deploy.json`` also stores ``signal_quality``: the training windows' signal statistics and the
thresholds the service uses to answer ``sensor_fault`` instead of a bearing class
(:mod:`cascadeprune.deploy.quality`).

Everything is written to a hidden sibling folder and renamed into place at the end.

Example::

    info = export_classifier("runs/gpt2-13.8x/model", "deploy/gpt2-13.8x", int8=True)
    info["parity"]["fp32"]["max_abs_logit_diff"]       # e.g. 2.4e-06
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import logging
import shutil
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np

from cascadeprune.deploy.quality import signal_quality_record
from cascadeprune.deploy.runtime import DEPLOY_FILE, DEPLOY_FORMAT, MODEL_MARKERS, ONNX_FILE, onnx_session
from cascadeprune.errors import CascadePruneError, OutputExistsError

PARITY_ATOL = 1e-4  # fp32 ONNX vs PyTorch, max |delta logit|
PARITY_MIN_WINDOWS = 256
INT8_TARGET_PP = 0.5  # int8 test accuracy within this many points of fp32 (recorded, not enforced)


class ExportParityError(CascadePruneError):
    """ONNX Runtime does not reproduce PyTorch closely enough; the figures are in the message."""


def source_digest(directory: Path) -> str:
    """sha256 over every file of a directory (relative path and bytes), in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(directory)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def flops_per_window(clf) -> dict[str, int]:
    """Forward FLOPs for one window (2 per multiply-add): front-end projections, blocks, head.

    The blocks use :func:`cascadeprune.accounting.flops_per_token` at a context of the window's
    token count; the FFT and normalisation (O(window log window)) are left out, as negligible."""
    from cascadeprune.accounting import flops_per_token

    if hasattr(clf, "flops_per_window"):  # a reference model (no transformer blocks) counts its own
        return clf.flops_per_window()
    tokens = clf.frontend.cfg.tokens
    per_token = flops_per_token(clf, context=tokens)
    blocks = tokens * (per_token["linear"] + per_token["attention"])
    cfg, fe = clf.frontend.cfg, clf.frontend
    raw_tokens, spec_tokens = cfg.window // cfg.patch, (cfg.window // 2) // cfg.patch
    front = sum(2 * lin.weight.numel() * n for lin, n in ((fe.proj, raw_tokens), (fe.spec_proj, spec_tokens),
                                                        (fe.global_proj, 1)) if lin is not None)
    head = 2 * clf.head.weight.numel()
    return {"frontend": front, "blocks": blocks, "head": head, "total": front + blocks + head, "tokens": tokens}


def model_block_params(clf) -> tuple[int, int]:
    """(block parameters, those of the dense model it came from); a reference model (no transformer
    blocks, never pruned) counts all its weights in both."""
    if hasattr(clf, "block_params"):
        n = clf.block_params()
        return n, n
    from cascadeprune.accounting import block_params, dense_block_params

    return block_params(clf), dense_block_params(clf)


def model_param_breakdown(clf) -> dict[str, int]:
    if hasattr(clf, "block_params"):
        return {"embeddings": 0, "blocks": clf.block_params(), "head": 0, "other": 0}
    from cascadeprune.accounting import param_breakdown

    return param_breakdown(clf)


def parity_windows(clf, task: str | None, data_dir: str | None) -> tuple[dict[str, np.ndarray], str]:
    """Test and validation windows (with labels) of the classifier's protocol, training windows when
    those are fewer than ``PARITY_MIN_WINDOWS`` (parity only), and calibration windows for static
    int8 (training split; never test)."""
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset

    protocol = task or clf.meta.get("protocol")
    if not protocol:
        raise CascadePruneError("the classifier does not record its protocol (classifier.json: protocol); "
                                "name one with --task")
    w = clf.window
    ds = build_dataset(protocol, data_dir, WindowConfig(window=w, stride=w // 2))
    if tuple(ds.classes) != tuple(clf.classes):
        raise CascadePruneError(f"the classifier predicts {list(clf.classes)} but {protocol} has {list(ds.classes)}")
    extra = ds.x["train"][: max(0, PARITY_MIN_WINDOWS - len(ds.x["test"]) - len(ds.x["val"]))]
    pick = np.random.default_rng(0).permutation(len(ds.x["train"]))[:CALIBRATION_WINDOWS]
    return {"test_x": ds.x["test"], "test_y": ds.y["test"], "val_x": ds.x["val"], "val_y": ds.y["val"],
            "extra_x": extra, "calib_x": ds.x["train"][pick],
            "signal_quality": signal_quality_record(ds.x["train"], protocol)}, protocol


_REFERENCE: dict[tuple, np.ndarray] = {}  # (source digest, protocol, windows) -> PyTorch logits, this process only


def _torch_logits(clf, x: np.ndarray, batch: int = 128, key: tuple | None = None) -> np.ndarray:
    """PyTorch's logits; with ``key`` (the source's digest and the windows) reused within a process,
    so exporting one classifier as fp32 and int8 runs the reference once."""
    if key is not None and key in _REFERENCE:
        return _REFERENCE[key]
    out = _torch_pass(clf, x, batch)
    if key is not None:
        _REFERENCE.clear()  # one source at a time: a big model's logits are not kept around
        _REFERENCE[key] = out
    return out


def _torch_pass(clf, x: np.ndarray, batch: int) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([clf(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def _onnx_logits(session, x: np.ndarray, batch: int = 128) -> np.ndarray:
    return np.concatenate([session.run(["logits"], {"signal": x[i:i + batch]})[0] for i in range(0, len(x), batch)])


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs optional-op registrations and prints its steps; keep stdout ours."""
    names = ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecation, not ours
            yield
    finally:
        for n, lvl in levels.items():
            logging.getLogger(n).setLevel(lvl)


def export_onnx(clf, path: Path, opset: int | None = None) -> int:
    """Write ``clf`` as ONNX (dynamo exporter, dynamic batch) to ``path``; return the opset used."""
    import torch

    window = clf.window
    # an example of batch 1 would fix the batch axis in the graph: use 2 and declare it dynamic
    example = torch.randn(2, window)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet_exporter():
        try:
            prog = torch.onnx.export(clf.eval(), (example,), input_names=["signal"], output_names=["logits"],
                                     dynamic_shapes=({0: batch},), dynamo=True, opset_version=opset, optimize=True,
                                     verbose=False)
        except Exception as e:  # the exporter raises many kinds; name the model and the first line
            raise CascadePruneError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from e
        prog.save(str(path), external_data=False)  # one self-contained file
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    used = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and used != opset:  # the exporter falls back silently; a request is honoured or refused
        raise CascadePruneError(f"--opset {opset}: the exporter wrote opset {used} instead (it could not convert this "
                                f"model to {opset}); leave --opset out or ask for {used}")
    return used


MIN_OPSET = 18  # torch.onnx's dynamo exporter writes 18 or newer; asked for less, it writes 18 without a word


def check_opset(opset: int | None) -> None:
    """Refuse, before any work, an opset the exporter cannot write (one line naming --opset and why)."""
    if opset is None:
        return
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise CascadePruneError(
            f"--opset {opset}: not supported; the dynamo exporter writes opset {MIN_OPSET} to {newest} (the legacy "
            f"TorchScript exporter, which could write older opsets, is silently wrong for GPT-2 at new shapes, so "
            f"this project does not use it); ask for {MIN_OPSET} or newer, or leave --opset out")
    if opset > newest:
        raise CascadePruneError(f"--opset {opset}: newer than this onnx package knows ({newest}); ask for "
                                f"{MIN_OPSET} to {newest}, or leave --opset out")


INT8_METHODS = ("dynamic", "static")
CALIBRATION_WINDOWS = 256  # static int8: training windows whose activation ranges fix the scales


class _Windows:
    """ONNX Runtime's CalibrationDataReader protocol over a few windows, one per call."""

    def __init__(self, x: np.ndarray):
        self.items = iter([{"signal": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.items, None)


def quantize_int8(fp32: Path, out: Path, method: str = "dynamic", calib_x: np.ndarray | None = None) -> dict:
    """int8 MatMul weights; activations per call (dynamic) or with calibrated fixed ranges (static)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a generic pre-processing hint on the root logger
    try:
        if method == "dynamic":
            quantize_dynamic(str(fp32), str(out), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
            return {"method": "dynamic", "op_types": ["MatMul"], "weight_type": "QInt8"}
        # Gemm too: GPT-2's Conv1D projections export as Gemm, and static QDQ handles it (dynamic does not)
        quantize_static(str(fp32), str(out), _Windows(calib_x), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul", "Gemm"], activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
        return {"method": "static", "op_types": ["MatMul", "Gemm"], "weight_type": "QInt8", "activation_type": "QInt8",
                "format": "QDQ", "per_channel": True, "calibration_windows": int(len(calib_x)),
                "calibration_split": "train"}
    finally:
        root.setLevel(level)


def _split_accuracy(logits: np.ndarray, windows: dict, split: str) -> float | None:
    """Accuracy on one split; ``logits`` are for [test, val, extra] windows in that order."""
    start = 0 if split == "test" else len(windows["test_x"])
    y = windows[f"{split}_y"]
    return float((logits[start:start + len(y)].argmax(1) == y).mean()) if len(y) else None


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


def export_classifier(classifier_dir: str | Path, out: str | Path, int8: bool | str = False, opset: int | None = None,
                      overwrite: bool = False, task: str | None = None, data_dir: str | None = None,
                      progress: bool = True) -> dict:
    """Export, check parity, write ``out/model.onnx`` and ``out/deploy.json``; return deploy.json's dict."""
    from cascadeprune.storage import load_model
    from cascadeprune.storage.save import swap_into_place

    src, out = Path(classifier_dir), Path(out)
    int8 = "dynamic" if int8 is True else (int8 or None)
    if int8 is not None and int8 not in INT8_METHODS:
        raise CascadePruneError(f"--int8 {int8!r}: choose one of {', '.join(INT8_METHODS)}")
    check_opset(opset)
    if not any((src / m).is_file() for m in MODEL_MARKERS):
        raise CascadePruneError(f"{classifier_dir} is not a classifier directory (no {' or '.join(MODEL_MARKERS)}); export takes "
                                f"the output of `cascadeprune train` or `compress` (DIR/model); a causal LM exports with --format gguf")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise CascadePruneError(f"--out {out} would write into the input classifier {src}; choose another directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise CascadePruneError(f"cannot write --out {out}: {e.strerror or e}") from None
    try:
        clf = load_model(src).eval()
        windows, protocol = parity_windows(clf, task, data_dir)
        bp, dense_bp = model_block_params(clf)
        _log(f"tracing {src} ({type(getattr(clf, 'backbone', clf)).__name__}, {bp:,} block params)", progress)
        fp32 = tmp / ("model.fp32.onnx" if int8 else ONNX_FILE)
        opset_used = export_onnx(clf, fp32, opset)
        n = sum(len(windows[k]) for k in ("test_x", "val_x", "extra_x"))
        _log(f"checking parity with PyTorch on {n} windows of {protocol}", progress)
        digest = source_digest(src)
        parity, x, fp32_logits = _parity(clf, fp32, windows, protocol, key=(digest, protocol, str(data_dir)))
        quant = None
        if int8:
            _log(f"quantizing to int8 ({int8})", progress)
            quant = quantize_int8(fp32, tmp / ONNX_FILE, int8, windows["calib_x"])
            parity["int8"] = _int8_figures(tmp / ONNX_FILE, x, fp32_logits, windows, parity)
            fp32.unlink()  # the deployed file is the int8 one; the fp32 export is one command away
        plan_file = next((f for f in (src / "plan.json", src / "backbone" / "plan.json") if f.is_file()), src / "plan.json")
        info = {
            "format": DEPLOY_FORMAT,
            "model_id": f"{_name(src)}-{digest[:8]}" + ("-int8" if int8 else ""),
            "input": "signal", "output": "logits",
            "window": int(clf.window), "sample_rate": float(clf.meta.get("sample_rate", 12000.0)),
            "classes": list(clf.classes),
            "block_compression_ratio": round(dense_bp / bp, 4),
            "block_params": bp, "dense_block_params": dense_bp,
            "params": model_param_breakdown(clf), "flops_per_window": flops_per_window(clf),
            "source": {"path": str(src.resolve()), "sha256": digest, "protocol": protocol,
                       "plan": json.loads(plan_file.read_text()) if plan_file.is_file() else None},
            "int8": bool(int8), "quantization": quant, "opset": opset_used,
            "parity": parity,
            # the training windows' signal statistics and the sensor-fault thresholds the service applies
            "signal_quality": windows["signal_quality"],
            "file_mb": round((tmp / ONNX_FILE).stat().st_size / 2**20, 3),
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / DEPLOY_FILE).write_text(json.dumps(info, indent=2) + "\n")
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def _parity(clf, fp32: Path, windows: dict, protocol: str, key: tuple | None = None
            ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Figures of fp32 ONNX vs PyTorch (raises when they miss), the windows and ONNX's logits."""
    x = np.concatenate([windows["test_x"], windows["val_x"], windows["extra_x"]])
    ref = _torch_logits(clf, x, key=None if key is None else key + (len(x),))
    got = _onnx_logits(onnx_session(fp32, threads=1), x)
    diff = float(np.abs(ref - got).max())
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    fig = {"windows": int(len(x)), "protocol": protocol, "test_windows": len(windows["test_x"]),
           "val_windows": len(windows["val_x"]), "fp32": {"max_abs_logit_diff": diff, "argmax_agreement": agree},
           "accuracy": {"torch": _split_accuracy(ref, windows, "test"), "onnx_fp32": _split_accuracy(got, windows, "test")},
           "val_accuracy": {"torch": _split_accuracy(ref, windows, "val"),
                            "onnx_fp32": _split_accuracy(got, windows, "val")}}
    if len(x) < PARITY_MIN_WINDOWS or agree < 1.0 or not diff <= PARITY_ATOL:
        raise ExportParityError(f"ONNX Runtime does not match PyTorch: max |delta logit| {diff:.3g} (limit "
                                f"{PARITY_ATOL:g}), argmax agreement {agree:.2%} (need 100 %) on {len(x)} windows "
                                f"(need >= {PARITY_MIN_WINDOWS}); nothing was written")
    return fig, x, got


def _int8_figures(int8: Path, x: np.ndarray, fp: np.ndarray, windows: dict, parity: dict) -> dict:
    q = _onnx_logits(onnx_session(int8, threads=1), x)
    acc = _split_accuracy(q, windows, "test")
    parity["accuracy"]["onnx_int8"] = acc
    parity["val_accuracy"]["onnx_int8"] = _split_accuracy(q, windows, "val")
    delta_pp = 100 * (acc - parity["accuracy"]["onnx_fp32"])
    return {"argmax_agreement_vs_fp32": float((q.argmax(1) == fp.argmax(1)).mean()),
            "max_abs_logit_diff_vs_fp32": float(np.abs(q - fp).max()),
            "accuracy_delta_pp": round(delta_pp, 3), "target_pp": INT8_TARGET_PP,
            "within_target": bool(abs(delta_pp) <= INT8_TARGET_PP)}


def _name(src: Path) -> str:
    """The folder that names a classifier: compress writes OUT/model, stage checkpoints are
    OUT/checkpoints/stage-NN; both are named by OUT."""
    p = src.resolve()
    while p.parent != p and (p.name in ("model", "checkpoints") or p.name.startswith("stage-")):
        p = p.parent
    return p.name


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
