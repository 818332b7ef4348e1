"""Benchmark drivers of cascadeprune: run from the repository root as ``python -m benchmarks.<driver>``.

Each driver calls the library or the CLI; what they share (paths, data windows, the provenance rule) is in
:mod:`benchmarks._common`. Results pages are generated from ``benchmarks/results/*.jsonl`` by
``python -m benchmarks.results_pages`` (``make results``).
"""
