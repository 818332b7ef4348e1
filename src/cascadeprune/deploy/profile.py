"""Where the time goes: ONNX Runtime's node profile summed per part of the classifier.

The dynamo exporter records each node's module path (``pkg.torch.onnx.name_scopes``). ONNX
Runtime fuses nodes and names a fused node after its first source node (``node_X/Fusion/``);
dynamic quantization adds nodes named after the tensor or node they quantize. Each profiled node
is mapped back to a graph node through those names and so to a part:

- ``frontend``: normalisation, FFT, patch/spectrum projections;
- ``blocks``: the transformer layers (what pruning shrinks);
- ``backbone_other``: positions, masks, the final norm;
- ``head``: pooling and the linear head;
- ``unattributed``: nodes whose origin the names do not reveal (reported, never spread).

Example::

    profile_parts("deploy/gpt2-13.8x", np.zeros((1, 1024), np.float32))["share"]["blocks"]
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from cascadeprune.deploy.runtime import ONNX_FILE, onnx_session, read_deploy

PARTS = ("frontend", "blocks", "backbone_other", "head", "unattributed")
WARMUP = 5
_LAYER = re.compile(r"^backbone(\.\w+)*\.\d+$")  # backbone.layers.3, backbone.h.3, backbone.encoder.layer.3
_LAYER_WEIGHT = re.compile(r"^backbone(\.\w+)*?\.\d+\.")  # a tensor inside one of those


def part_of_scope(scopes: list[str]) -> str:
    """``['', 'backbone', 'backbone.layers.1', ...]`` -> ``blocks``."""
    names = [s for s in scopes if s]
    if not names:
        return "unattributed"
    if names[0] == "frontend":
        return "frontend"
    if names[0] == "head":
        return "head"
    if names[0] == "backbone":
        return "blocks" if any(_LAYER.match(s) for s in names[1:]) else "backbone_other"
    return "unattributed"


def node_parts(model_file: Path) -> dict[str, str]:
    """Graph node name -> part: the exporter's name scopes first; nodes without them (added by
    quantization or renamed by its pre-optimisation) by the weights they read, then by the
    nodes they feed or are fed by."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    nodes = list(model.graph.node)
    out = {}
    for node in nodes:
        meta = {p.key: p.value for p in node.metadata_props}
        raw = meta.get("pkg.torch.onnx.name_scopes")
        try:
            scopes = json.loads(raw.replace("'", '"')) if raw else []
        except json.JSONDecodeError:
            scopes = []
        out[node.name] = part_of_scope(scopes)
        if out[node.name] == "unattributed":
            out[node.name] = _part_of_weights(node.input)
    producer = {t: n.name for n in nodes for t in n.output}
    consumers: dict[str, list[str]] = {}
    for n in nodes:
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)
    for _ in range(20):  # propagate along the data flow until nothing changes
        changed = False
        for n in nodes:
            if out[n.name] != "unattributed":
                continue
            after = {out[c] for t in n.output for c in consumers.get(t, ())} - {"unattributed"}
            before = {out[producer[t]] for t in n.input if t in producer} - {"unattributed"}
            guess = next(iter(after)) if len(after) == 1 else (next(iter(before)) if len(before) == 1 else None)
            if guess:
                out[n.name], changed = guess, True
        if not changed:
            break
    return out


def _part_of_weights(inputs) -> str:
    """A node reading ``backbone.h.3.attn.c_attn.weight_quantized`` belongs to the blocks, and so on."""
    for name in inputs:
        root = name.split(".")[0]
        if root in ("frontend", "head"):
            return root
        if root == "backbone":
            return "blocks" if _LAYER_WEIGHT.match(name) else "backbone_other"
    return "unattributed"


def _guess(name: str, known: dict[str, str]) -> str:
    base = name.split("/")[0]
    if known.get(base, "unattributed") != "unattributed":
        return known[base]
    parts = base.split("_")
    for k in range(len(parts) - 1, 1, -1):  # strip suffixes like _quant, _QuantizeLinear
        cand = "_".join(parts[:k])
        if known.get(cand, "unattributed") != "unattributed":
            return known[cand]
    return "unattributed"


def profile_parts(export_dir: str | Path, x: np.ndarray, threads: int = 1, runs: int = 50) -> dict:
    """Mean ms per call spent in each part (kernel time from ONNX Runtime's profiler), and shares."""
    export_dir = Path(export_dir)
    info = read_deploy(export_dir)
    parts = node_parts(export_dir / ONNX_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        sess = onnx_session(export_dir / ONNX_FILE, threads, profile_prefix=os.path.join(tmp, "ort"))
        for _ in range(WARMUP + runs):
            sess.run([info["output"]], {info["input"]: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    # the profiler cannot be switched on mid-session: drop the nodes of the warm-up calls by time
    starts = sorted(ev["ts"] + ev["dur"] for ev in events if ev.get("name") == "model_run")
    after = starts[WARMUP - 1] if len(starts) >= WARMUP else 0
    sums = dict.fromkeys(PARTS, 0.0)
    for ev in events:
        if ev.get("cat") != "Node" or not ev["name"].endswith("_kernel_time") or ev["ts"] < after:
            continue
        node = ev["name"][: -len("_kernel_time")]
        sums[parts.get(node) or _guess(node, parts)] += ev["dur"] / 1000.0  # us -> ms
    ms = {k: v / runs for k, v in sums.items()}
    kernel = sum(ms.values())
    return {"ms": {k: round(v, 4) for k, v in ms.items()}, "kernel_ms": round(kernel, 4),
            "share": {k: round(v / kernel, 4) if kernel else 0.0 for k, v in ms.items()}, "runs": runs}
