"""`cascadeprune serve --mqtt` against a real Mosquitto broker that the tests start, restart and stop.

No mock broker: where `mosquitto` is missing these tests skip (fail under CI=true).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from cascadeprune.serve.service import Service
from serve_support import WINDOW, Mosquitto, mosquitto_binary, synthetic_dataset, tiny_export

PREFIX = "plant/line3"


class Client:
    """A persistent-session QoS-1 test client: publishes, and collects what arrives on ``subscribe``."""

    def __init__(self, broker: Mosquitto, client_id: str, subscribe: tuple[str, ...] = ()):
        self.messages: list[tuple[str, dict]] = []
        self.acked = 0
        self._cv = threading.Condition()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(0.1, 1)  # the broker restarts within a second in these tests
        c.on_connect = lambda cl, u, f, rc, p: subscribe and cl.subscribe([(t, 1) for t in subscribe])
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.connect_async("127.0.0.1", broker.port, keepalive=10)
        c.loop_start()
        self.client = c

    def _on_message(self, client, userdata, msg):
        with self._cv:
            self.messages.append((msg.topic, json.loads(msg.payload)))
            self._cv.notify_all()

    def _on_publish(self, *args):
        with self._cv:
            self.acked += 1
            self._cv.notify_all()

    def publish(self, topic: str, payload) -> None:
        self.client.publish(topic, payload, qos=1)  # queued by paho while the broker is away

    def wait(self, condition, timeout: float = 60.0, what: str = "") -> None:
        with self._cv:
            if not self._cv.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def ids(self, kind: str = "diagnosis") -> list:
        with self._cv:
            return [m["id"] for t, m in self.messages if t.endswith("/" + kind)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    mosquitto_binary()  # skip before the export is built when there is no broker
    return tiny_export(tmp_path_factory.getbasetemp() / "serve-artifact")


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def windows():
    return synthetic_dataset().x["test"]


def vibration(i: int, x: np.ndarray, prefix: str = PREFIX) -> tuple[str, str]:
    device = f"pump-{i % 5}"
    return f"{prefix}/{device}/vibration", json.dumps({"id": f"m{i}", "signal": x.tolist(), "sample_rate": 12000})


def start_service(artifact, broker, client_id: str = "serve-test", prefix: str = PREFIX) -> Service:
    svc = Service(str(artifact[1]), mqtt=broker.url, topic_prefix=prefix, client_id=client_id)
    svc.mqtt.client.reconnect_delay_set(0.1, 1)
    svc.start()
    assert svc.mqtt.subscribed.wait(20), "the service did not subscribe"
    return svc


def test_broker_restart_midway_loses_nothing(artifact, broker, windows):
    """500 QoS-1 messages; the broker stops and starts again (same port and database) in the middle."""
    svc = start_service(artifact, broker)
    sink = Client(broker, "sink", (f"{PREFIX}/+/diagnosis", f"{PREFIX}/+/error"))
    src = Client(broker, "sensors")
    try:
        assert sink.subscribed.wait(10)
        n = 500
        for i in range(250):
            src.publish(*vibration(i, windows[i % len(windows)]))
        sink.wait(lambda s: len(s.ids()) >= 100, what="the first answers")
        broker.stop()  # with answers and requests in flight on both sides
        for i in range(250, 300):  # published while the broker is down: paho holds them
            src.publish(*vibration(i, windows[i % len(windows)]))
        time.sleep(0.5)
        broker.start()
        for i in range(300, n):
            src.publish(*vibration(i, windows[i % len(windows)]))
        sink.wait(lambda s: len(set(s.ids())) >= n, timeout=90,
                  what=f"all {n} ids answered (have {len(set(sink.ids()))})")
        got = sink.ids()
        assert set(got) == {f"m{i}" for i in range(n)}
        assert not sink.ids("error")
        for topic, d in sink.messages:
            i = int(d["id"][1:])
            assert topic == f"{PREFIX}/pump-{i % 5}/diagnosis" and d["device"] == f"pump-{i % 5}"
            assert d["label"] in d["probabilities"] and abs(sum(d["probabilities"].values()) - 1) < 1e-5
        print(f"\nbroker restart: {n} ids answered, {len(got) - n} duplicate answer(s)")
    finally:
        src.close()
        sink.close()
        svc.stop()


def test_bad_payloads_get_errors_and_the_loop_goes_on(artifact, broker, windows):
    svc = start_service(artifact, broker)
    sink = Client(broker, "sink", (f"{PREFIX}/+/diagnosis", f"{PREFIX}/+/error"))
    src = Client(broker, "sensors")
    topic = f"{PREFIX}/fan-7/vibration"
    good = windows[0].tolist()
    try:
        assert sink.subscribed.wait(10)
        bad = [b'{"id": "b1", "signal": [0.0, ', json.dumps({"id": "b2", "signal": good[:10]}),
               '{"id": "b3", "signal": [NaN' + ", 0.0" * (WINDOW - 1) + "]}",
               json.dumps({"id": "b4", "signal": good, "sample_rate": 48000}), b"\x00\x01\x02", b""]
        for k, payload in enumerate(bad):
            src.publish(topic, payload)
            src.publish(topic, json.dumps({"id": f"ok-after-{k}", "signal": good}))
        src.publish(topic, json.dumps({"id": "dup", "signal": good}))  # same id twice: answered once
        src.publish(topic, json.dumps({"id": "dup", "signal": good}))
        src.publish(topic, np.asarray(windows[1], "<f4").tobytes())  # raw float32: the id is the MQTT mid
        src.publish(topic, json.dumps({"id": "last", "signal": good}))
        sink.wait(lambda s: "last" in s.ids(), what="the last good message")
        time.sleep(0.3)  # any late duplicate would arrive by now
        errors = {m["id"]: m["error"] for t, m in sink.messages if t == f"{PREFIX}/fan-7/error"}
        assert len(errors) == len(bad), errors
        assert "expected 256" in errors["b2"] and "NaN/Inf" in errors["b3"] and "48000 Hz" in errors["b4"]
        assert all("\n" not in e for e in errors.values())
        # no readable id (broken JSON, junk bytes, nothing): the error carries the MQTT message id
        by_mid = sorted(e for k, e in errors.items() if isinstance(k, int))
        assert len(by_mid) == 3 and "malformed JSON" in by_mid[2], by_mid
        assert "empty body" in by_mid[1] and "3 bytes is not exactly one window" in by_mid[0]
        ids = sink.ids()
        assert ids.count("dup") == 1 and sum(k.startswith("ok-after") for k in ids if isinstance(k, str)) == 6
        assert sum(isinstance(k, int) for k in ids) == 1  # the raw window's answer
        text = svc.metrics.render()[0].decode()
        assert 'cascadeprune_mqtt_messages_total{direction="out",kind="error"} 6.0' in text
        assert 'cascadeprune_mqtt_dropped_total{reason="duplicate"} 1.0' in text
    finally:
        src.close()
        sink.close()
        svc.stop()


class ServeProcess:
    """`python -m cascadeprune serve ARTIFACT --mqtt ...`, its JSON log lines collected."""

    def __init__(self, artifact, broker, client_id: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "cascadeprune", "serve", str(artifact), "--mqtt",
                                      broker.url, "--topic-prefix", PREFIX, "--client-id", client_id],
                                     stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        with self._cv:
            assert self._cv.wait_for(lambda: any(e["event"] == "subscribed" for e in self.events) or
                                     self.proc.poll() is not None, 60), "the service did not subscribe"
        assert self.proc.poll() is None, self.events

    def _read(self):
        for line in iter(self.proc.stderr.readline, ""):
            if line.startswith("{"):
                with self._cv:
                    self.events.append(json.loads(line))
                    self._cv.notify_all()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def test_service_restart_midway_answers_what_came_while_it_was_down(artifact, broker, windows):
    """SIGTERM drains and exits 0; messages published while it is down are answered once it is back."""
    sink = Client(broker, "sink", (f"{PREFIX}/+/diagnosis", f"{PREFIX}/+/error"))
    src = Client(broker, "sensors")
    serve = ServeProcess(artifact[1], broker, "line3-diagnosis")
    try:
        assert sink.subscribed.wait(10)
        n = 500
        for i in range(250):
            src.publish(*vibration(i, windows[i % len(windows)]))
        sink.wait(lambda s: len(s.ids()) >= 50, what="the first answers")
        assert serve.terminate() == 0  # while messages are still arriving
        stop = [e for e in serve.events if e["event"] == "stop"]
        assert stop and stop[0]["mqtt_unacknowledged"] == 0
        answered_before = len(set(sink.ids()))
        for i in range(250, n):
            src.publish(*vibration(i, windows[i % len(windows)]))
        src.wait(lambda s: s.acked >= n, what="the broker to take every message")
        time.sleep(0.3)
        assert len(set(sink.ids())) == answered_before  # nobody answers while the service is down
        assert answered_before < n
        serve = ServeProcess(artifact[1], broker, "line3-diagnosis")
        connected = [e for e in serve.events if e["event"] == "connected"]
        assert connected and connected[0]["session_present"] is True  # the broker kept our session
        sink.wait(lambda s: len(set(s.ids())) >= n, timeout=90,
                  what=f"all {n} ids answered (have {len(set(sink.ids()))})")
        assert set(sink.ids()) == {f"m{i}" for i in range(n)} and not sink.ids("error")
    finally:
        src.close()
        sink.close()
        if serve.proc.poll() is None:
            assert serve.terminate() == 0


def test_service_killed_midway_loses_nothing(artifact, broker, windows):
    """SIGKILL, no drain: a message is acknowledged only once its answer is with the broker, so every
    message the dead service had taken is delivered again to the next one."""
    sink = Client(broker, "sink", (f"{PREFIX}/+/diagnosis", f"{PREFIX}/+/error"))
    src = Client(broker, "sensors")
    serve = ServeProcess(artifact[1], broker, "line3-killed")
    try:
        assert sink.subscribed.wait(10)
        n = 300
        for i in range(n):
            src.publish(*vibration(i, windows[i % len(windows)]))
        sink.wait(lambda s: len(s.ids()) >= 30, what="the first answers")
        serve.proc.kill()
        serve.proc.wait(10)
        assert len(set(sink.ids())) < n
        serve = ServeProcess(artifact[1], broker, "line3-killed")
        sink.wait(lambda s: len(set(s.ids())) >= n, timeout=90,
                  what=f"all {n} ids answered (have {len(set(sink.ids()))})")
        assert set(sink.ids()) == {f"m{i}" for i in range(n)}
    finally:
        src.close()
        sink.close()
        if serve.proc.poll() is None:
            assert serve.terminate() == 0


def _faults() -> dict[str, np.ndarray]:
    x = synthetic_dataset().x["test"][3]
    rail = float(np.percentile(np.abs(x), 90))
    stuck = x.copy()
    stuck[60:120] = np.sort(x)[WINDOW // 2]
    return {"flat": np.zeros(WINDOW, np.float32), "clipped": np.clip(x, -rail, rail), "stuck": stuck}


def test_sensor_faults_and_corrected_resends_are_answered(artifact, broker, windows, capfd):
    """Flat, clipped and stuck windows get a sensor_fault answer on /diagnosis; a window that got an
    /error (NaN) or a sensor_fault and is resent, fixed, under the same id gets its diagnosis; an exact
    duplicate of a diagnosed message is dropped, and the drop is logged with its reason and counted."""
    svc = start_service(artifact, broker)
    sink = Client(broker, "sink", (f"{PREFIX}/+/diagnosis", f"{PREFIX}/+/error"))
    src = Client(broker, "sensors")
    topic = f"{PREFIX}/fan-9/vibration"
    good = windows[0].tolist()
    try:
        assert sink.subscribed.wait(10)
        for kind, w in _faults().items():
            src.publish(topic, json.dumps({"id": f"fault-{kind}", "signal": w.tolist()}))
        nan = list(good)
        nan[5] = float("nan")
        src.publish(topic, json.dumps({"id": "r1", "signal": nan}))  # json.dumps writes NaN
        src.publish(topic, json.dumps({"id": "r1", "signal": good}))  # fixed, same id
        src.publish(topic, json.dumps({"id": "fault-flat", "signal": good}))  # sensor fixed, same id
        sink.wait(lambda s: s.ids().count("r1") == 1, what="r1's diagnosis")  # (a resend while in flight
        src.publish(topic, json.dumps({"id": "r1", "signal": good}))  # is acknowledged with its answer)
        src.publish(topic, json.dumps({"id": "last", "signal": good}))
        sink.wait(lambda s: "last" in s.ids(), what="the last message")
        time.sleep(0.3)
        answers = [(t.rsplit("/", 1)[1], m) for t, m in sink.messages]
        for kind in ("flat", "clipped", "stuck"):
            a = [m for t, m in answers if m["id"] == f"fault-{kind}"][0]
            assert a["label"] is None and a["sensor_fault"]["kind"] == kind and a["device"] == "fan-9", a
            assert {"statistic", "value", "threshold", "message"} <= set(a["sensor_fault"])
        r1 = [(t, m.get("label")) for t, m in answers if m["id"] == "r1"]
        assert r1[0] == ("error", None) and len(r1) == 2 and r1[1][0] == "diagnosis" and r1[1][1], r1
        flat = [m for t, m in answers if m["id"] == "fault-flat"]
        assert len(flat) == 2 and flat[1]["label"] and "sensor_fault" not in flat[1], flat
        text = svc.metrics.render()[0].decode()
        assert 'cascadeprune_mqtt_dropped_total{reason="duplicate"} 1.0' in text
        for kind in ("flat", "clipped", "stuck"):
            assert f'cascadeprune_sensor_faults_total{{kind="{kind}"}} 1.0' in text
        assert 'cascadeprune_mqtt_messages_total{direction="out",kind="sensor_fault"} 3.0' in text
    finally:
        src.close()
        sink.close()
        svc.stop()
    drops = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith('{"ts"')]
    drops = [e for e in drops if e["event"] == "drop"]
    assert len(drops) == 1 and drops[0]["reason"] == "duplicate" and drops[0]["id"] == "r1", drops
    assert "already diagnosed" in drops[0]["message"]


def test_client_id_clash_is_logged_as_such_with_growing_backoff(artifact, broker, capfd):
    """Two services with one --client-id: each one thrown off logs client_id_clash (not an unspecified
    error) and waits longer before each reconnect."""
    a = start_service(artifact, broker, client_id="same-id")
    b = None
    try:
        a.mqtt.clash_backoff_s = (0.2, 0.8)
        b = Service(str(artifact[1]), mqtt=broker.url, topic_prefix=PREFIX, client_id="same-id")
        b.mqtt.clash_backoff_s = (0.2, 0.8)
        b.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and a.mqtt.clashes + b.mqtt.clashes < 5:
            time.sleep(0.1)
        assert a.mqtt.clashes + b.mqtt.clashes >= 5
    finally:
        for s in (b, a):
            if s is not None:
                s.stop()
    events = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith('{"ts"')]
    clashes = [e for e in events if e.get("kind") == "client_id_clash"]
    assert len(clashes) >= 5 and all("same-id" in e["message"] and "--client-id" in e["message"] for e in clashes)
    waits = [e["retry_in_s"] for e in clashes]
    assert waits[:4] == sorted(waits[:4]) and max(waits) == 0.8 and min(waits) == 0.2, waits  # doubles, capped
    # Mosquitto 2.0 does not say why it drops a connection: the first short loss of each service reads as
    # a plain loss, every later one as a clash
    assert len([e for e in events if e.get("kind") == "disconnected"]) <= 2
