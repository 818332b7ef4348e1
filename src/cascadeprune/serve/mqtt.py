"""The MQTT side: QoS 1 in and out, a persistent session, acknowledgement only once answered.

Topics (``PREFIX`` defaults to ``cascadeprune``)::

    PREFIX/<device>/vibration   in:  {"id": "...", "signal": [floats], "sample_rate": 12000}
                                     or one window of raw float32 little-endian samples (id = MQTT mid)
    PREFIX/<device>/diagnosis   out: {"id", "device", "label", "probabilities", "model", "latency_ms"}
    PREFIX/<device>/error       out: {"id", "error"}

    (a window with a sensor fault gets ``"label": null`` and ``"sensor_fault": {...}`` on diagnosis)

Why it loses nothing: the session is persistent (MQTT 5, fixed client id, clean start off, a session
that never expires), so the broker keeps queueing while the service is away; and an incoming message
is acknowledged (manual PUBACK) only after the broker has acknowledged its answer, so a crash or a
broker restart at any point makes the broker deliver it again rather than drop it. QoS 1 may
therefore deliver twice: a message whose (device, id, payload) already got a bearing diagnosis
within the hour is not answered again. Only a diagnosis counts: a message that got an ``/error``
or a ``sensor_fault`` answer is answered again when it comes back (a corrected resend under the
same id is a new payload anyway). Every message taken without an answer of its own is logged
(``drop`` with its reason) and counted (``cascadeprune_mqtt_dropped_total{reason}``).

Two services with one client id take the session from each other. The one thrown off logs
``client_id_clash`` and waits longer before each reconnect (doubling from 1 s to 60 s) instead of
knocking the other one off every half second. A broker that speaks MQTT 5's "Session taken over"
makes it certain; Mosquitto 2.0 just closes the connection, so two connections in a row that the
broker accepted and dropped within 10 s are taken as a clash (``"certain": false``).

Example::

    worker = MqttWorker("mqtt://127.0.0.1:1883", predictor, diagnoser, Metrics(), client_id="line-3")
    worker.start(); ...; worker.stop()   # stop answers what it took, then disconnects
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cascadeprune.errors import CascadePruneError
from cascadeprune.serve.logs import log
from cascadeprune.serve.payload import BadInput, parse_mqtt

REMEMBERED_IDS = 100_000  # diagnosed (device, id, payload digest) keys kept for deduplication ...
REMEMBER_S = 3600.0  # ... for this long
SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: another client connected with our client id
CLASH_BACKOFF_S = (1.0, 60.0)  # wait before reconnecting after a clash: doubles from, capped at
CLASH_WINDOW_S = 10.0  # a connection dropped by the broker sooner than this is "short" ...
CLASH_SHORT_LOSSES = 2  # ... and this many short ones in a row are a client-id clash
NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5 session expiry interval: keep the session (and its queue) forever


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """``mqtt://HOST[:PORT]`` -> (host, port); 1883 by default."""
    u = urlsplit(url if "://" in url else f"mqtt://{url}")
    if u.scheme != "mqtt" or not u.hostname:
        raise CascadePruneError(f"--mqtt {url!r} is not mqtt://HOST[:PORT] (TLS, mqtts://, is not supported yet)")
    try:
        return u.hostname, u.port or 1883
    except ValueError:
        raise CascadePruneError(f"--mqtt {url!r} has an invalid port") from None


@dataclass
class _Work:
    """One answer in flight: the incoming (mid, qos, connection) triples it acknowledges once the broker has it."""

    key: tuple | None
    acks: list = field(default_factory=list)
    device: str = ""
    rid: object = None
    diagnosed: bool = False  # its answer was a bearing diagnosis (errors and sensor faults are not remembered)


class MqttWorker:
    def __init__(self, url: str, predictor, diagnoser, metrics, prefix: str = "cascadeprune",
                 client_id: str | None = None, reconnect_s: tuple[float, float] = (0.5, 30.0),
                 clash_backoff_s: tuple[float, float] = CLASH_BACKOFF_S, ui=None):
        self.host, self.port = parse_mqtt_url(url)
        if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
            raise CascadePruneError(f"--topic-prefix {prefix!r} must be a topic without wildcards or edge slashes")
        self.predictor, self.diagnoser, self.metrics, self.prefix = predictor, diagnoser, metrics, prefix
        self.ui = ui  # the operator page's board (serve/ui.py), or None with --no-ui
        self.topic = f"{prefix}/+/vibration"
        self.client_id = client_id or f"cascadeprune-{predictor.model_id}"[:64]
        # MQTT 5: the broker says why it throws us off (a client-id clash is "Session taken over")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        self.reconnect_s, self.clash_backoff_s = reconnect_s, clash_backoff_s
        c.reconnect_delay_set(*reconnect_s)  # exponential backoff between these bounds
        self.clashes = 0  # session take-overs in a row; reset by a connection that lasts
        self._short = 0  # connections in a row the broker dropped within CLASH_WINDOW_S
        self._connected_at = 0.0
        c.on_connect, c.on_disconnect, c.on_subscribe = self._on_connect, self._on_disconnect, self._on_subscribe
        c.on_message, c.on_publish = self._on_message, self._on_publish
        c.on_socket_open = _no_delay
        self.client = c
        self._lock = threading.Condition()
        self._inflight: dict = {}  # key -> _Work being answered
        self._answered: OrderedDict = OrderedDict()  # key -> time diagnosed, oldest first
        self._waiting: dict[int, _Work] = {}  # outgoing mid -> work acknowledged when the broker has it
        self._early: set[int] = set()  # PUBACKs that beat the registration of their mid
        self._pending = 0  # accepted messages not yet acknowledged
        self._draining = False
        # Packet ids are reused once acknowledged, so an id from an earlier connection may name another
        # message by now: acknowledge only on the connection that delivered it (the broker re-sends
        # everything unacknowledged to a reconnecting persistent session, so nothing is dropped).
        self._connection = 0
        self.subscribed = threading.Event()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries the first connection and every later loss."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = NEVER_EXPIRES  # MQTT 5's default (0) would drop the session on disconnect
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self, timeout: float = 30.0) -> int:
        """Take no new messages, wait until every accepted one is answered and acknowledged, disconnect.

        Returns how many were still unacknowledged at the deadline (they are redelivered next time)."""
        with self._lock:
            self._draining = True
            self._lock.wait_for(lambda: self._pending == 0, timeout)
            left = self._pending
        self.client.disconnect()  # queued after our PUBACKs, so those reach the broker first
        self.client.loop_stop()
        return left

    def pending(self) -> int:
        """Messages accepted and not yet acknowledged (being answered, or answers awaiting the broker)."""
        with self._lock:
            return self._pending

    # paho callbacks (network thread) --------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log("error", where="mqtt", kind="connect", message=f"broker {self.host}:{self.port} refused: {reason_code}")
            return
        with self._lock:
            self._connection += 1
            self._connected_at = time.monotonic()
        self.metrics.mqtt_connected.set(1)
        log("connected", broker=f"{self.host}:{self.port}", client_id=self.client_id,
            session_present=bool(flags.session_present))
        client.subscribe(self.topic, qos=1)  # harmless when the session already holds it

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            log("error", where="mqtt", kind="subscribe", message=f"broker refused {self.topic}: {reason_codes}")
            return
        log("subscribed", topic=self.topic, qos=1)
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if self._draining:
            return
        lived = time.monotonic() - self._connected_at
        taken_over = getattr(reason_code, "value", reason_code) == SESSION_TAKEN_OVER
        # Mosquitto (2.0) closes the older of two connections with one client id without saying why
        # (paho: "Unspecified error"). The mark of a clash is then a connection the broker accepted and
        # dropped again soon, over and over, while reconnecting works at once; a broker restart refuses
        # the reconnect instead, and a connection that lasts ends the episode.
        window = max(CLASH_WINDOW_S, 2 * self.clash_backoff_s[1]) if self.clashes else CLASH_WINDOW_S
        self._short = self._short + 1 if lived < window else 0
        if taken_over or self._short >= CLASH_SHORT_LOSSES:
            self._on_clash(lived, certain=taken_over)
            return
        if self.clashes:  # the episode is over: ordinary backoff again
            self.clashes = 0
            client.reconnect_delay_set(*self.reconnect_s)
        log("error", where="mqtt", kind="disconnected",
            message=f"lost broker {self.host}:{self.port} ({reason_code}) after {lived:.1f} s connected; "
                    f"reconnecting with backoff")

    def _on_clash(self, lived: float, certain: bool) -> None:
        """Another client connected with our client id and the broker gave it our session. Paho would
        reconnect in 0.5 s and throw the other one off in turn, forever: wait longer each time."""
        lo, hi = self.clash_backoff_s
        self.clashes += 1
        delay = min(hi, lo * 2 ** (self.clashes - 1))
        # called before paho's reconnect wait, so the next wait is `delay`
        self.client.reconnect_delay_set(delay, max(delay, hi))
        self.metrics.mqtt_clashes.inc()
        why = ("the broker says 'Session taken over' (MQTT 5)" if certain else
               f"the broker accepted this service and dropped it again after {lived:.1f} s, {self._short} times "
               f"in a row, as it does when another client connects with the same client id")
        log("error", where="mqtt", kind="client_id_clash", client_id=self.client_id, clashes=self.clashes,
            certain=certain, retry_in_s=delay,
            message=f"client-id clash on broker {self.host}:{self.port}: {why}; two running services must not "
                    f"share --client-id {self.client_id!r}; reconnecting in {delay:g} s (doubling up to {hi:g} s)")

    def _on_message(self, client, userdata, msg):
        device = msg.topic[len(self.prefix) + 1:-len("/vibration")]
        if self._draining:  # not acknowledged: the broker delivers it again to the next session
            self._drop("shutting_down", device, _guess_id(msg), "service is stopping; left unacknowledged, the "
                                                                "broker delivers it again to the next session")
            return
        self.metrics.mqtt.labels(direction="in", kind="vibration").inc()
        t0 = time.perf_counter()
        try:
            parsed = parse_mqtt(msg.payload, self.predictor.window, self.predictor.sample_rate)
        except BadInput as e:
            self._reject(device, _guess_id(msg), msg, e.kind, str(e))
            return
        except Exception as e:  # noqa: BLE001 - a poison message must not stop the loop
            self._reject(device, _guess_id(msg), msg, "internal", f"{type(e).__name__}: {e}")
            return
        rid = parsed.id if parsed.id is not None else msg.mid
        # the payload is part of the key: a resend with other samples under the same id is new work
        key = (device, parsed.id, hashlib.blake2b(msg.payload, digest_size=16).digest()) \
            if parsed.id is not None else None
        delivery = (msg.mid, msg.qos, self._connection)
        with self._lock:
            answered = self._answered.get(key, -REMEMBER_S) if key is not None else -REMEMBER_S
            if time.monotonic() - answered < REMEMBER_S:
                duplicate = f"already diagnosed {time.monotonic() - answered:.1f} s ago (same device, id and payload)"
            elif key is not None and key in self._inflight:  # redelivered while we work on it
                duplicate = "the same message is being answered now; acknowledged with that answer"
                if delivery not in self._inflight[key].acks:
                    self._inflight[key].acks.append(delivery)
            else:
                duplicate = None
                work = _Work(key, [delivery], device, rid)
                if key is not None:
                    self._inflight[key] = work
                self._pending += 1
        if duplicate is not None:
            self._drop("duplicate", device, rid, duplicate)
            if duplicate.startswith("already"):
                client.ack(msg.mid, msg.qos)
            return
        try:
            fut = self.diagnoser.submit(parsed.windows)
        except CascadePruneError:  # shutting down: leave it unacknowledged for the next session
            self._drop("shutting_down", device, rid, "the engine is stopping; left unacknowledged, the broker "
                                                     "delivers it again to the next session")
            self._finish(work, ack=False)
            return
        fut.add_done_callback(lambda f: self._answer(f, work, device, rid, t0))

    def _drop(self, reason: str, device: str, rid, message: str) -> None:
        """A message taken without an answer of its own: always logged and counted, never silent."""
        self.metrics.mqtt_dropped.labels(reason=reason).inc()
        log("drop", where="mqtt", reason=reason, device=device, id=rid, message=message)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            work = self._waiting.pop(mid, None)
            if work is None:
                self._early.add(mid)
                return
        self._finish(work)

    # answers (engine thread, or network thread for rejections) -------------------------------------
    def _answer(self, fut, work: _Work, device: str, rid, t0: float) -> None:
        if fut.exception() is not None:
            self.metrics.errors.labels(kind="inference").inc()
            log("error", where="mqtt", kind="inference", device=device, id=rid, message=str(fut.exception()))
            self._publish(f"{self.prefix}/{device}/error", {"id": rid, "error": "inference failed; see the "
                                                            "service log"}, work, "error")
            return
        answer = fut.result()[0]
        kind = "diagnosis" if answer["label"] is not None else "sensor_fault"
        if self.ui is not None:
            self.ui.answered(device, "mqtt", [answer], time.perf_counter() - t0)
        self._publish(f"{self.prefix}/{device}/diagnosis",
                      {"id": rid, "device": device, **answer, "model": self.predictor.model_id,
                       "latency_ms": round((time.perf_counter() - t0) * 1e3, 3)}, work, kind)

    def _reject(self, device: str, rid, msg, kind: str, message: str) -> None:
        self.metrics.errors.labels(kind=kind).inc()
        log("error", where="mqtt", kind=kind, device=device, id=rid, message=message)
        if self.ui is not None:
            self.ui.rejected(device, "mqtt", kind, message)
        with self._lock:
            self._pending += 1
            work = _Work(None, [(msg.mid, msg.qos, self._connection)], device, rid)
        self._publish(f"{self.prefix}/{device}/error", {"id": rid, "error": message}, work, "error")

    def _publish(self, topic: str, body: dict, work: _Work, kind: str) -> None:
        # never under self._lock: paho holds its own lock while calling _on_publish, which takes ours
        work.diagnosed = kind == "diagnosis"  # only a bearing diagnosis makes a resend a duplicate
        info = self.client.publish(topic, json.dumps(body), qos=1)  # queued by paho while disconnected
        self.metrics.mqtt.labels(direction="out", kind=kind).inc()
        with self._lock:
            if info.mid not in self._early:
                self._waiting[info.mid] = work
                return
            self._early.discard(info.mid)
        self._finish(work)

    def _finish(self, work: _Work, ack: bool = True) -> None:
        with self._lock:
            if work.key is not None:
                self._inflight.pop(work.key, None)
                if ack and work.diagnosed:
                    self._answered[work.key] = time.monotonic()
                    self._answered.move_to_end(work.key)
                    while len(self._answered) > REMEMBERED_IDS:
                        self._answered.popitem(last=False)
            acks = [(mid, qos) for mid, qos, conn in work.acks if ack and conn == self._connection]
            work.acks = []
            self._pending -= 1
            self._lock.notify_all()
        for mid, qos in acks:
            self.client.ack(mid, qos)


def _no_delay(client, userdata, sock) -> None:
    """Send small packets at once. paho leaves Nagle's algorithm on; with PUBACKs and answers in
    flight both ways it meets delayed ACKs and stalls ~40 ms (measured here, tiny model, broker with
    ``set_tcp_nodelay true``, 8 messages in flight: p50 46 -> 11 ms, 245 -> 670 messages/s)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper): nothing to tune
        pass


def _guess_id(msg):
    """The id of a rejected JSON payload when it has a usable one, else the MQTT message id."""
    try:
        rid = json.loads(msg.payload).get("id")
    except Exception:  # noqa: BLE001 - any unreadable payload falls back to the mid
        return msg.mid
    return rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else msg.mid
