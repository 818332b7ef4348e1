"""What the CKA token sample and the angular distance add to one calibration pass (`calib.collect`).

Times ``collect`` with ``cka_tokens=0`` (no sample) against the default ``CKA_TOKENS`` on the same batches,
interleaved, several repeats, median wall time each; also the cost of scoring ``cka`` from the stored sample.
Prints a table; writes no records (a helper-level check of a constant overhead, not a result).

    python -m benchmarks.calib_overhead                                   # tiny models, seconds
    python -m benchmarks.calib_overhead --models smollm2-135m --batches 4 --batch-size 8 --seq 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, batches: int, batch_size: int, seq: int, repeats: int) -> dict:
    from cascadeprune import load_model
    from cascadeprune.calib import CKA_TOKENS, collect
    from cascadeprune.importance import score

    model = load_model(name).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(2, vocab, (batch_size, seq), generator=g) for _ in range(batches)]
    collect(model, data[:1], cka_tokens=CKA_TOKENS)  # warm-up
    off, on = [], []
    for _ in range(repeats):  # interleaved, so a change of machine load hits both alike
        off.append(_time(lambda: collect(model, data, cka_tokens=0)))
        on.append(_time(lambda: collect(model, data, cka_tokens=CKA_TOKENS)))
    stats = collect(model, data, cka_tokens=CKA_TOKENS)
    t_score = _time(lambda: score("layers", "cka", stats))
    a, b = statistics.median(off), statistics.median(on)
    return {"model": name, "tokens": batches * batch_size * seq, "layers": len(stats.layers), "without_s": a,
            "with_s": b, "overhead_pct": 100 * (b / a - 1), "score_cka_s": t_score}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny-llama", "tiny-gpt2"])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | tokens | layers | collect without sample s | with CKA sample + angular s | overhead | "
          "score cka s |")
    print("|---|---|---|---|---|---|---|")
    for m in a.models:
        r = measure(m, a.batches, a.batch_size, a.seq, a.repeats)
        print(f"| {r['model']} | {r['tokens']:,} | {r['layers']} | {r['without_s']:.3f} | {r['with_s']:.3f} | "
              f"{r['overhead_pct']:+.1f} % | {r['score_cka_s']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
