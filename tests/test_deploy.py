"""Export and bench: ONNX Runtime equals PyTorch for dense and non-uniform pruned classifiers of a
GQA+SwiGLU, a GPT-2 and a BERT family; int8 records its accuracy; bad input is refused with one
line and exit code 2, leaving nothing half-written; bench returns every key."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import onnx
import pytest
import torch

from cascadeprune import apply_plan, save_model
from cascadeprune.accounting import param_breakdown
from cascadeprune.arch.resolve import dense_dims
from cascadeprune.cli import main
from cascadeprune.deploy import export as export_mod
from cascadeprune.deploy.bench import KEYS
from cascadeprune.deploy.export import ExportParityError, export_classifier
from cascadeprune.deploy.runtime import load_predictor
from cascadeprune.errors import CascadePruneError
from cascadeprune.plan import random_plan
from cascadeprune.storage.load import load_backbone
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier

CLASSES = ("normal", "inner", "outer", "ball")  # the synthetic protocol's
# one front end per family so that all three feature paths are exported too
CASES = {"llama": "spectrum", "gpt2": "raw", "bert": "both"}


def make_classifier(family: str, pruned: bool) -> VibrationClassifier:
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone(f"tiny-{family}"), CLASSES, FrontEndConfig(512, 16, features=CASES[family]),
                              meta={"protocol": "synthetic"}).eval()
    if pruned:  # non-uniform: every layer keeps a different number of heads and channels
        plan = random_plan(dense_dims(clf), random.Random(1), uniform=False, layers=0.25, heads=0.4, channels=0.3)
        clf = apply_plan(clf, plan)
    return clf


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(family, pruned) -> (classifier dir, export dir, deploy.json); llama pruned also as int8."""
    root = tmp_path_factory.mktemp("deploy")
    out = {}
    for family in CASES:
        for pruned in (False, True):
            name = f"{family}-{'pruned' if pruned else 'dense'}"
            save_model(make_classifier(family, pruned), root / name)
            info = export_classifier(root / name, root / f"{name}.onnx", progress=False)
            out[family, pruned] = (root / name, root / f"{name}.onnx", info)
    info = export_classifier(root / "llama-pruned", root / "llama-pruned.int8", int8=True, progress=False)
    out["int8"] = (root / "llama-pruned", root / "llama-pruned.int8", info)
    return out


@pytest.mark.parametrize("pruned", [False, True], ids=["dense", "nonuniform"])
@pytest.mark.parametrize("family", sorted(CASES))
def test_onnx_equals_pytorch_with_dynamic_batch(exported, family, pruned):
    src, exp, info = exported[family, pruned]
    clf = load_predictor(src)  # the PyTorch reference, loaded like a user would
    onnx_pred = load_predictor(exp)
    assert onnx_pred.runtime == "onnx" and clf.runtime == "torch"
    x = np.random.default_rng(3).standard_normal((6, 512)).astype(np.float32) * 5
    for batch in (1, 5):  # one ONNX Runtime session, two batch sizes
        got, ref = onnx_pred.logits(x[:batch]), clf.logits(x[:batch])
        assert got.shape == (batch, 4)
        assert np.abs(got - ref).max() <= 1e-4
        assert (got.argmax(1) == ref.argmax(1)).all()
    par = info["parity"]
    assert par["windows"] >= 256 and par["fp32"]["argmax_agreement"] == 1.0
    assert par["fp32"]["max_abs_logit_diff"] <= 1e-4
    assert par["accuracy"]["torch"] == par["accuracy"]["onnx_fp32"]
    assert (info["block_compression_ratio"] > 1.0) == pruned
    assert any(info["source"]["plan"]["remove"].values()) == pruned  # the cumulative plan travels with the artifact
    assert info["classes"] == list(CLASSES) and info["window"] == 512 and info["input"] == "signal"
    g = onnx.load(str(exp / "model.onnx")).graph
    assert [i.name for i in g.input] == ["signal"] and [o.name for o in g.output] == ["logits"]
    assert g.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis


def test_nothing_unused_is_shipped(exported):
    """BERT's pooler and the one-row token table are not in the graph: fewer weights than the model."""
    src, exp, _ = exported["bert", False]
    g = onnx.load(str(exp / "model.onnx")).graph
    shipped = sum(int(np.prod(t.dims)) for t in g.initializer)
    from cascadeprune import load_model

    counts = param_breakdown(load_model(src))
    assert shipped <= counts["total"] - counts["other"]  # "other" holds BERT's pooler
    assert not any("pooler" in t.name or "word_embeddings" in t.name for t in g.initializer)


def test_int8_records_accuracy_beside_fp32(exported):
    _, exp, info = exported["int8"]
    _, exp32, info32 = exported["llama", True]
    assert info["int8"] is True and info["quantization"]["method"] == "dynamic"
    acc = info["parity"]["accuracy"]
    q = info["parity"]["int8"]
    assert {"torch", "onnx_fp32", "onnx_int8"} <= set(acc)
    assert q["accuracy_delta_pp"] == pytest.approx(100 * (acc["onnx_int8"] - acc["onnx_fp32"]), abs=1e-3)
    assert 0.9 <= q["argmax_agreement_vs_fp32"] <= 1.0
    assert (exp / "model.onnx").stat().st_size < (exp32 / "model.onnx").stat().st_size
    assert not (exp / "model.fp32.onnx").exists()
    ops = {n.op_type for n in onnx.load(str(exp / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}, ops
    assert info["model_id"].endswith("-int8")


def _entries(d):
    return sorted(p.name for p in d.iterdir())


def test_export_refuses_bad_input_with_one_line(exported, tmp_path, capsys):
    src, exp, _ = exported["gpt2", True]
    before = _entries(exp.parent)
    cases = {
        "not a classifier": (["export", "tiny-llama", "--out", str(tmp_path / "x")], "not a classifier directory"),
        "existing out": (["export", str(src), "--out", str(exp)], "already exists"),
        "unwritable": (["export", str(src), "--out", str(src / "classifier.json" / "sub")], "would write into"),
    }
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cases["parent is a file"] = (["export", str(src), "--out", str(blocker / "out")], "cannot write")
    for name, (argv, words) in cases.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, (name, err)
    assert _entries(exp.parent) == before  # nothing half-written next to the outputs
    assert json.loads((exp / "deploy.json").read_text())["format"] == "cascadeprune-deploy/1"


def test_failed_parity_writes_nothing(exported, tmp_path, monkeypatch):
    src, _, _ = exported["gpt2", False]
    monkeypatch.setattr(export_mod, "PARITY_ATOL", 0.0)  # no float graph can meet this: the refusal path
    with pytest.raises(ExportParityError, match="argmax agreement"):
        export_classifier(src, tmp_path / "out", progress=False)
    assert _entries(tmp_path) == []


def test_overwrite_replaces_a_previous_export(exported, tmp_path):
    src, _, _ = exported["llama", False]
    export_classifier(src, tmp_path / "e", progress=False)
    (tmp_path / "e" / "stale.txt").write_text("from before")
    info = export_classifier(src, tmp_path / "e", overwrite=True, progress=False)
    assert _entries(tmp_path / "e") == ["deploy.json", "model.onnx"] and info["int8"] is False


def test_runtime_refusals(exported):
    src, exp, _ = exported["llama", False]
    with pytest.raises(CascadePruneError, match="cascadeprune export"):
        load_predictor(src, runtime="onnx")
    with pytest.raises(CascadePruneError, match="ONNX export"):
        load_predictor(exp, runtime="torch")
    with pytest.raises(CascadePruneError, match=r"\[batch, 512\]"):
        load_predictor(exp).logits(np.zeros((2, 100), np.float32))


def test_bench_two_artifacts_returns_every_key(exported, capsys):
    _, dense, _ = exported["gpt2", False]
    _, pruned, _ = exported["gpt2", True]
    assert main(["bench", str(dense), str(pruned), "--runs", "30", "--warmup", "3", "--batch", "2",
                 "--breakdown", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 2
    for r in recs:
        for k in KEYS + ("model_id", "runtime", "batch", "threads", "base_rss_mb", "accuracy", "vs_first"):
            assert r.get(k) is not None, k
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["batch"] == 2 and r["runtime"] == "onnx"
        assert 0 < r["model_mem_mb"] < r["peak_rss_mb"]
        b = r["breakdown"]
        assert abs(sum(b["share"].values()) - 1) < 0.01 and b["share"]["blocks"] > 0.2
        assert b["share"]["unattributed"] < 0.3
    assert recs[0]["vs_first"]["p50_ms"] == 1.0
    assert recs[1]["flops_per_window"] < recs[0]["flops_per_window"]
    assert recs[1]["block_params"] < recs[0]["block_params"]


def test_bench_onnx_worker_never_imports_torch(exported):
    """An edge box serving the export needs ONNX Runtime and numpy only."""
    import subprocess

    _, exp, _ = exported["llama", True]
    code = ("import sys, json; from cascadeprune.deploy.bench_worker import measure; "
            f"measure({str(exp)!r}, None, 1, 1, 3, 1); print(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "false"


def test_bench_torch_classifier_and_bad_paths(exported, tmp_path, capsys):
    src, _, _ = exported["bert", True]
    assert main(["bench", str(src), "--runs", "5", "--warmup", "1", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["runtime"] == "torch" and rec["block_compression_ratio"] > 1
    assert main(["bench", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", str(src), "--runtime", "onnx"]) == 2
    assert "cascadeprune export" in capsys.readouterr().err


def test_empty_model_constant_is_the_one_node_model():
    """The worker's baseline model (embedded so that the worker need not import onnx) is what it says."""
    import base64

    from onnx import TensorProto, helper

    from cascadeprune.deploy.bench_worker import EMPTY_ONNX

    x = helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])
    g = helper.make_graph([helper.make_node("Relu", ["signal"], ["logits"], name="relu")], "empty", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="cascadeprune")
    m.ir_version = 8
    assert base64.b64decode(EMPTY_ONNX) == m.SerializeToString()


def test_static_int8_calibrates_on_training_windows(exported, tmp_path):
    src, _, fp32 = exported["gpt2", True]
    info = export_classifier(src, tmp_path / "static", int8="static", progress=False)
    q = info["quantization"]
    assert q["method"] == "static" and q["calibration_split"] == "train" and q["calibration_windows"] == 256
    ops = {n.op_type for n in onnx.load(str(tmp_path / "static" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the weights are stored as int8 (GPT-2's projections are Gemm: quantized too), so most elements are int8
    inits = onnx.load(str(tmp_path / "static" / "model.onnx")).graph.initializer
    size = {dt: sum(int(np.prod(t.dims)) for t in inits if t.data_type == dt) for dt in (1, 3)}  # float, int8
    assert size[3] > 2 * size[1], size
    assert set(info["parity"]["val_accuracy"]) == {"torch", "onnx_fp32", "onnx_int8"}
    assert info["parity"]["accuracy"]["torch"] == fp32["parity"]["accuracy"]["torch"]
    with pytest.raises(CascadePruneError, match="choose one of"):
        export_classifier(src, tmp_path / "bad", int8="float4", progress=False)


def test_breakdown_attributes_quantized_nodes(exported):
    """Dynamic quantization renames and adds nodes without the exporter's scopes: they still land in a part."""
    from cascadeprune.deploy.profile import node_parts, profile_parts

    _, exp, _ = exported["int8"]
    parts = node_parts(exp / "model.onnx")
    assert list(parts.values()).count("unattributed") <= 0.05 * len(parts)
    b = profile_parts(exp, np.zeros((1, 512), np.float32), runs=10)
    assert b["share"]["blocks"] > 0.3 and b["share"]["unattributed"] < 0.1, b
