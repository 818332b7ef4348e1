"""Loopback ports for a service and its clients: pick a free one, wait until something listens.

Used by the serve tests and ``benchmarks/serve.py`` to start real servers and brokers.

Example::

    port = free_port(); start_server(port); wait_port(port, timeout=10)
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, poll: float = 0.02) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
