"""One artifact, one fresh process: load, warm up, time single calls, report JSON on stdout.

Run by :func:`cascadeprune.deploy.bench.bench_artifacts`, never imported by it::

    python -m cascadeprune.deploy.bench_worker '{"path": "deploy/x", "runtime": "onnx", "batch": 1, ...}'

The thread pools are pinned through the environment before numpy, onnxruntime or torch is
imported. The ONNX path imports neither torch nor transformers (``import cascadeprune`` is lazy).
Model memory = peak RSS of the whole process (VmHWM, never reset) minus the RSS of the same process
with the runtime imported and initialised but no model loaded (ONNX Runtime: one call of a
one-node model; PyTorch: torch, transformers and the family's modeling code imported, one matmul).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _pin(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


# A one-node ONNX model (Relu on float32 [batch, 4], opset 17), serialized. Running it once before the
# baseline reading initialises ONNX Runtime itself (environment, allocator, thread pool), which is the
# runtime's cost, not the model's. Built by empty_model_bytes() in the tests, which check it is equal.
EMPTY_ONNX = ("CAgSDGNhc2NhZGVwcnVuZTpjChwKBnNpZ25hbBIGbG9naXRzGgRyZWx1IgRSZWx1EgVlbXB0eVodCgZzaWduYWwSEwoRCAESDQoHEgViYXRjaAo"
              "CCARiHQoGbG9naXRzEhMKEQgBEg0KBxIFYmF0Y2gKAggEQgQKABAR")


def _import_runtime(runtime: str, path: str, threads: int) -> None:
    """Import and initialise what running the artifact needs, but load no weights: the baseline of
    model memory."""
    if runtime == "onnx":
        import base64

        import numpy as np

        from cascadeprune.deploy.runtime import onnx_session

        onnx_session(base64.b64decode(EMPTY_ONNX), threads).run(None, {"signal": np.zeros((1, 4), np.float32)})
    else:
        import torch

        torch.set_num_threads(threads)
        torch.ones(4, 4) @ torch.ones(4, 4)  # initialises the thread pool and the allocator
        import transformers  # noqa: F401

        from cascadeprune import storage  # noqa: F401

        # transformers imports a family's modeling code on first use: code, not model memory
        from pathlib import Path

        cfg = Path(path) / "backbone" / "config.json"
        for arch in (json.loads(cfg.read_text()).get("architectures") or []) if cfg.is_file() else []:
            getattr(transformers, arch, None)


def _dir_mb(path) -> float:
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def _describe(pred) -> dict:
    """Size, parameter and FLOP figures of what was loaded."""
    from cascadeprune.deploy.runtime import ONNX_FILE

    if pred.runtime == "onnx":
        info = pred.info
        return {"file_mb": (pred.path / ONNX_FILE).stat().st_size / 2**20, "int8": bool(info.get("int8")),
                "block_params": info.get("block_params"),
                "block_compression_ratio": info.get("block_compression_ratio"),
                "flops_per_window": (info.get("flops_per_window") or {}).get("total"),
                "block_flops_per_window": (info.get("flops_per_window") or {}).get("blocks"),
                "accuracy": (info.get("parity") or {}).get("accuracy", {}).get(
                    "onnx_int8" if info.get("int8") else "onnx_fp32")}
    from cascadeprune.deploy.export import flops_per_window, model_block_params

    flops = flops_per_window(pred.model)
    bp, dense_bp = model_block_params(pred.model)
    return {"file_mb": _dir_mb(pred.path), "int8": False, "block_params": bp,
            "block_compression_ratio": round(dense_bp / bp, 4),
            "flops_per_window": flops["total"], "block_flops_per_window": flops["blocks"], "accuracy": None}


def measure(path: str, runtime: str | None, batch: int, threads: int, runs: int, warmup: int,
            breakdown: bool = False, max_seconds: float | None = None) -> dict:
    """``runs`` timed calls after ``warmup`` untimed ones; with ``max_seconds`` the timed calls stop
    once that much time is spent (at least 20 calls), and ``runs`` in the record says how many ran."""
    from cascadeprune.memory import peak_rss_mb, rss_mb
    from cascadeprune.deploy.runtime import artifact_kind

    kind = artifact_kind(path)
    runtime = runtime or ("onnx" if kind == "export" else "torch")
    _import_runtime(runtime, path, threads)
    import numpy as np

    from cascadeprune.deploy.runtime import load_predictor

    base = rss_mb()
    t0 = time.perf_counter()
    pred = load_predictor(path, threads=threads, runtime=runtime)
    load_s = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((batch, pred.window)).astype(np.float32)
    for _ in range(warmup):
        pred.logits(x)
    times = []
    start = time.perf_counter()
    for i in range(runs):
        t = time.perf_counter()
        pred.logits(x)
        times.append(time.perf_counter() - t)
        if max_seconds is not None and i >= 19 and time.perf_counter() - start > max_seconds:
            break
    times = np.array(times)
    runs = len(times)
    peak = peak_rss_mb()  # read before anything else is allocated (the breakdown opens a second session)
    ms = times * 1000
    rec = {"path": str(path), "model_id": pred.model_id, "runtime": runtime, "batch": batch, "threads": threads,
           "runs": runs, "warmup": warmup,
           "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
           "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
           "throughput_per_s": float(batch * runs / times.sum()),
           "peak_rss_mb": peak, "base_rss_mb": base, "model_mem_mb": peak - base, "load_s": load_s,
           **_describe(pred)}
    if breakdown:
        if runtime != "onnx":
            raise SystemExit("the per-part breakdown uses the ONNX Runtime profiler: give an export directory")
        from cascadeprune.deploy.profile import profile_parts

        rec["breakdown"] = profile_parts(pred.path, x, threads=threads, runs=max(20, runs // 5))
    return rec


def main() -> int:
    args = json.loads(sys.argv[1])
    _pin(int(args["threads"]))
    from cascadeprune.errors import CascadePruneError

    try:
        rec = measure(**args)
    except CascadePruneError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
