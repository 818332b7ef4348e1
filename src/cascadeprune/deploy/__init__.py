"""Deployment measurements (memory now; export and latency later)."""
