"""Helpers for the serve tests: a tiny exported classifier, free ports, a real Mosquitto broker.

    broker = Mosquitto(tmp_path).start(); ...; broker.stop(); broker.start()  # same port and database
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from cascadeprune.serve.ports import free_port, wait_port

WINDOW = 256  # small windows keep the tiny model fast; the synthetic protocol takes any window


def synthetic_dataset():
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset

    # the windowing `cascadeprune eval` uses: stride half the window
    return build_dataset("synthetic", windows=WindowConfig(window=WINDOW, stride=WINDOW // 2))


@functools.lru_cache(maxsize=None)
def tiny_export(base: Path) -> tuple[Path, Path]:
    """(classifier dir, export dir) of a briefly trained tiny GPT-2 classifier; built once per session."""
    import torch

    from cascadeprune.deploy.export import export_classifier
    from cascadeprune.storage import save_model
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.train import TrainConfig, train_classifier

    ds = synthetic_dataset()
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("gpt2-tiny"), ds.classes, FrontEndConfig(WINDOW, 16),
                              meta={"protocol": "synthetic"})
    # a few steps so that predictions differ between windows (an untrained model says one label)
    train_classifier(clf, ds, TrainConfig(max_steps=12, batch_size=32, lr=3e-3, seed=0, warmup_steps=2,
                                          eval_every=100), progress=False)
    save_model(clf, base / "clf", overwrite=True)
    export_classifier(base / "clf", base / "export", overwrite=True, progress=False)
    return base / "clf", base / "export"


def mosquitto_binary() -> str:
    """The broker's path; skips (fails under CI=true) when Mosquitto is not installed."""
    path = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if os.access(p, os.X_OK)), None)
    if path:
        return path
    msg = "mosquitto is not installed: run `apt-get install mosquitto` (or `make .venv/.installed` as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


class Mosquitto:
    """A broker on a free loopback port with persistence in ``folder``; restartable on the same port."""

    def __init__(self, folder: Path, port: int | None = None):
        self.binary = mosquitto_binary()
        self.folder, self.port = Path(folder), port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf = self.folder / "mosquitto.conf"
        # ../shared/DESIGN.md: these settings make a restart lose nothing (defaults lost every queued message)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {self.folder}/", "persistence_file mosquitto.db",
                 "autosave_interval 1", "autosave_on_changes true", "max_queued_messages 0",
                 "set_tcp_nodelay true",  # small packets at once (Nagle vs delayed ACK stalls ~40 ms)
                 f"log_dest file {self.folder}/mosquitto.log"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot write our temp folder
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            log = (self.folder / "mosquitto.log")
            raise RuntimeError(f"mosquitto did not start: {log.read_text()[-500:] if log.exists() else ''}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: the broker saves its database and exits, as `systemctl restart` would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


# the operator page's browser test: Debian's chromium, driven by Playwright, never a downloaded browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_binary() -> str:
    """Debian's chromium and the playwright package; skips (fails under CI=true) when either is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} is not installed: run `apt-get install chromium` (or `make .venv/.installed` as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package is not installed: pip install -e '.[dev]'")
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("; ".join(missing))
        pytest.skip("; ".join(missing))
    return CHROMIUM
