"""On-device path: export (ONNX, int8), runtimes, latency/memory benchmarks in fresh processes.

``runtime`` (load an export or a classifier, predict) imports neither torch nor transformers;
``export`` does (it traces the PyTorch classifier); ``bench`` runs ``bench_worker`` per artifact;
``profile`` attributes ONNX Runtime's kernel time to the classifier's parts; ``memory`` reads
the process's resident and peak memory.
"""
