"""The plant-floor service: diagnoses over HTTP (ASGI on uvicorn) and MQTT around an exported artifact.

    cascadeprune serve export-dir --http 127.0.0.1:8080 --mqtt mqtt://127.0.0.1:1883

Modules: ``payload`` (parse and check signals), ``engine`` (one inference thread, dynamic batches),
``http`` (the ASGI app), ``mqtt`` (the broker worker), ``metrics`` (Prometheus), ``service`` (run
both until SIGTERM/SIGINT, then drain). Nothing here imports torch unless the artifact is a
classifier directory (the PyTorch fallback of :func:`cascadeprune.deploy.runtime.load_predictor`).
"""
