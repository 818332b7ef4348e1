// The operator page: polls GET /v1/status and GET /v1/devices about once a second and redraws in place.
// Plain browser JavaScript, no build step, no library; every text from the service goes in through
// textContent (device names come from MQTT topics that anyone on the plant network may publish to).
"use strict";

const POLL_MS = 1000;          // normal polling interval
const MAX_BACKOFF_MS = 5000;   // while the service is unreachable: 1, 2, 4, 5, 5, ... s
const TIMEOUT_MS = 4000;       // a request that hangs longer counts as a failure
const PALETTE = ["#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037",
                 "#9e9d24", "#37474f"];

const state = { instance: null, delay: POLL_MS, classes: [], failures: 0, lastOk: null };

function $(id) { return document.getElementById(id); }

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);   // CSSOM, allowed by the page's CSP
    else if (k === "data") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function color(label) {
  const i = state.classes.indexOf(label);
  return i < 0 ? "#999" : PALETTE[i % PALETTE.length];
}

function fmt(x, digits) { return x === null || x === undefined ? "-" : Number(x).toFixed(digits); }

function age(seconds) {
  if (seconds < 1) return "just now";
  if (seconds < 90) return Math.round(seconds) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  return (seconds / 3600).toFixed(1) + " h ago";
}

async function getJSON(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const r = await fetch(path, { cache: "no-store", signal: ctl.signal });
    if (!r.ok) throw new Error(path + " answered HTTP " + r.status);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

function setConnection(kind, text) {
  const c = $("conn");
  c.dataset.state = kind;
  c.textContent = text;
}

// ---- model --------------------------------------------------------------------------------------
function renderModel(m) {
  $("model-id").textContent = m.model_id;
  document.title = "cascadeprune serve: " + m.model_id;
  const dl = $("model");
  dl.replaceChildren();
  const add = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(el("dt", { text: k }), v instanceof Node ? el("dd", {}, v) : el("dd", { text: String(v) })); };
  add("Model", m.model_id);
  add("Runtime", m.runtime);
  const classes = el("span");
  m.classes.forEach((c) => classes.append(el("span", { class: "badge" }, el("span", { class: "swatch", style: { background: color(c) } }), c)));
  add("Classes", classes);
  add("Window", m.window + " samples (" + fmt(1000 * m.window / m.sample_rate, 1) + " ms)");
  add("Sample rate", m.sample_rate + " Hz");
  if (!m.deploy_json) { add("deploy.json", "none (a classifier directory served through PyTorch)"); return; }
  if (m.block_compression_ratio !== null && m.block_compression_ratio !== undefined)
    add("Compression", fmt(m.block_compression_ratio, 2) + "x transformer blocks (" + m.block_params + " of " +
        m.dense_block_params + " parameters)");
  add("int8", m.int8 ? "yes" + (m.quantization && m.quantization.method ? " (" + m.quantization.method + ")" : "") : "no (fp32)");
  const p = m.parity;
  if (p) {
    if (p.fp32) add("Parity, fp32 vs PyTorch", "max |logit diff| " + Number(p.fp32.max_abs_logit_diff).toExponential(1) +
        ", argmax agreement " + fmt(100 * p.fp32.argmax_agreement, 2) + " % on " + p.windows + " windows of " + p.protocol);
    if (p.accuracy) add("Test accuracy", Object.entries(p.accuracy).map(([k, v]) => k + " " + fmt(100 * v, 2) + " %").join(", "));
    if (p.int8) add("Parity, int8 vs fp32", "argmax agreement " + fmt(100 * p.int8.argmax_agreement_vs_fp32, 2) +
        " %, accuracy " + (p.int8.accuracy_delta_pp >= 0 ? "+" : "") + p.int8.accuracy_delta_pp + " pp" +
        (p.int8.within_target ? " (within " : " (outside ") + p.int8.target_pp + " pp target)");
  }
  if (m.source_sha256) add("Source sha256", el("code", { text: m.source_sha256, title: "sha256 of the classifier the export came from" }));
  add("Protocol", m.protocol);
  add("File", m.file_mb !== null && m.file_mb !== undefined ? m.file_mb + " MB" : null);
  add("Exported", m.created);
  const sc = m.signal_check;
  add("Signal check", !sc ? "off (every window gets a bearing class)" : Object.entries(sc.thresholds || {})
      .map(([k, v]) => k + " " + Number(v).toPrecision(3)).join(", ") + (sc.source ? " (" + sc.source + ")" : ""));
}

// ---- health -------------------------------------------------------------------------------------
function renderHealth(s) {
  const h = s.health;
  $("rate").textContent = fmt(h.windows_per_s, 1);
  $("windows").textContent = String(Math.round(h.windows));
  $("queue").textContent = h.queue_depth + " request(s) waiting" +
      (h.broker.enabled ? ", " + h.broker.unacknowledged + " MQTT message(s) in flight" : "");
  const b = $("broker");
  if (!h.broker.enabled) { b.dataset.state = "off"; b.textContent = "MQTT off (HTTP only)"; }
  else if (h.broker.connected && h.broker.subscribed) {
    b.dataset.state = "connected"; b.textContent = "connected to " + h.broker.address + ", subscribed to " + h.broker.topic;
  } else {
    b.dataset.state = "down";
    b.textContent = (h.broker.connected ? "connected, subscribing" : "not connected, retrying") + " (" + h.broker.address + ")";
  }
  if (h.broker.client_id_clashes) {   // another running client uses our client id: the broker keeps swapping us
    b.dataset.state = "down";
    b.textContent += "; client-id clash x" + h.broker.client_id_clashes + ": another client uses --client-id " +
        h.broker.client_id + " (backing off)";
  }
  $("topic-hint").textContent = h.broker.enabled ? h.broker.topic.replace("+", "<device>") : "PREFIX/<device>/vibration";
  $("uptime").textContent = new Date(s.service.started * 1000).toLocaleString() + " (" + age(s.service.uptime_s).replace(" ago", "") + ")";
  countTable("errors", h.errors);
  countTable("faults", h.sensor_faults || {});
  const lt = $("latency").tBodies[0];
  lt.replaceChildren(...Object.entries(s.latency).map(([src, v]) => el("tr", { data: { source: src } },
      el("td", { text: src }), el("td", { class: "num", text: String(v.n) }), el("td", { class: "num", text: fmt(v.p50_ms, 2) }),
      el("td", { class: "num", text: fmt(v.p90_ms, 2) }), el("td", { class: "num", text: fmt(v.p99_ms, 2) }))));
}

function countTable(id, counts) {
  const rows = Object.entries(counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  $(id).tBodies[0].replaceChildren(...rows.map(([k, n]) => el("tr", { data: { kind: k } }, el("td", { text: k }),
    el("td", { class: "num count", text: String(n) }))));
  $(id).hidden = rows.length === 0;
  $("no-" + id).hidden = rows.length !== 0;
}

// ---- devices ------------------------------------------------------------------------------------
function stripCell(r) {
  const title = new Date(r.t * 1000).toLocaleTimeString() + ": " + (r.label === null ? r.kind : r.label + " " + fmt(r.p, 2));
  if (r.kind === "diagnosis") return el("span", { title, style: { background: color(r.label), opacity: String(0.35 + 0.65 * r.p) } });
  return el("span", { title, class: r.kind === "sensor_fault" ? "fault" : "rejected" });
}

function renderDevices(d, fetchedAt) {
  const tb = $("devices").tBodies[0];
  const skew = (Date.now() - fetchedAt) / 1000;   // seconds since the answer left the service
  const rows = d.devices.map((v) => {
    const notes = el("td");
    if (v.changed) notes.append(el("span", { class: "badge warn", text: "changed (was " + v.previous + ")" }));
    if (v.low_confidence) notes.append(el("span", { class: "badge warn", text: "low confidence (< " + d.min_confidence + ")" }));
    if (v.sensor_fault) notes.append(el("span", { class: "badge bad", title: v.last_fault || "", text: "sensor fault" }));
    else if (v.faults) notes.append(el("span", { class: "badge", title: v.last_fault || "", text: v.faults + " sensor fault(s)" }));
    if (v.errors) notes.append(el("span", { class: "badge bad", title: v.last_error || "", text: v.errors + " rejected" }));
    const counts = el("td", { class: "counts" });
    for (const [c, n] of Object.entries(v.counts)) if (n > 0)
      counts.append(el("span", { class: "badge", data: { class: c } }, el("span", { class: "swatch", style: { background: color(c) } }), c + " " + n));
    const label = v.label === null ? el("td", { class: "label muted", text: "none yet" })
        : el("td", { class: "label" }, el("span", { class: "swatch", style: { background: color(v.label) } }), v.label);
    return el("tr", { class: v.alert ? "alert" : "", data: { device: v.device } },
      el("td", { class: "device", text: v.device }), el("td", { text: v.source }), label,
      el("td", { class: "num probability", text: fmt(v.probability, 3) }),
      el("td", { class: "age", text: age(d.now - v.last_seen + skew) }), counts,
      el("td", {}, el("div", { class: "strip" }, ...v.strip.map(stripCell))), notes);
  });
  tb.replaceChildren(...rows);
  $("no-devices").hidden = rows.length !== 0;
  $("devices").hidden = rows.length === 0;
  $("devices-caption").textContent = rows.length ? "(" + rows.length + "; counts and strip over the last " + d.history + " results" +
      (d.evicted ? "; " + d.evicted + " least recent device(s) dropped" : "") + ")" : "";
  const legend = $("legend");
  legend.replaceChildren(...d.classes.map((c) => el("span", {}, el("span", { class: "swatch", style: { background: color(c) } }), c)),
    el("span", {}, el("span", { class: "swatch rejected" }), "rejected input"),
    el("span", {}, el("span", { class: "swatch fault" }), "sensor fault"),
    el("span", {}, "highlighted: diagnosis changed within the last " + d.change_hold + " diagnoses, probability below " +
       d.min_confidence + ", or a sensor fault"));
}

// ---- polling ------------------------------------------------------------------------------------
async function tick() {
  try {
    const [status, devices] = await Promise.all([getJSON("/v1/status"), getJSON("/v1/devices")]);
    const fetchedAt = Date.now();
    state.classes = devices.classes;
    if (state.instance !== status.service.instance) {
      if (state.instance !== null) {
        const n = $("restart-note");
        n.textContent = "The service restarted at " + new Date(status.service.started * 1000).toLocaleTimeString() +
            "; device history starts afresh.";
        n.hidden = false;
      }
      state.instance = status.service.instance;
      renderModel(status.model);
    }
    renderHealth(status);
    renderDevices(devices, fetchedAt);
    state.failures = 0;
    state.delay = POLL_MS;
    state.lastOk = new Date();
    setConnection("live", "live, updated " + state.lastOk.toLocaleTimeString());
  } catch (e) {
    state.failures += 1;
    state.delay = Math.min(POLL_MS * 2 ** state.failures, MAX_BACKOFF_MS);
    setConnection("down", "service unreachable" + (state.lastOk ? " since " + state.lastOk.toLocaleTimeString() : "") +
        "; retrying in " + Math.round(state.delay / 1000) + " s");
  }
  setTimeout(tick, state.delay);
}

// ---- try it -------------------------------------------------------------------------------------
function parseCSV(text) {
  // one window: numbers separated by commas, semicolons or whitespace; a non-numeric first line is a header.
  // Cells that are not numbers are sent as they are, so the service names the first bad one.
  let rows = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(/[,;\s]+/).filter(Boolean));
  if (rows.length > 1 && rows[0].some((t) => Number.isNaN(Number(t)))) rows = rows.slice(1);
  return rows.flat().map((t) => { const v = Number(t); return Number.isFinite(v) ? v : t; });
}

async function tryIt(ev) {
  ev.preventDefault();
  const out = $("try-result");
  const file = $("try-file").files[0];
  if (!file) return;
  let format = $("try-format").value;
  if (format === "auto") format = /\.(csv|txt|tsv)$/i.test(file.name) ? "csv" : "f32";
  out.replaceChildren(el("p", { class: "muted", text: "sending " + file.name + "..." }));
  try {
    const init = format === "csv"
      ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ signal: parseCSV(await file.text()) }) }
      : { method: "POST", headers: { "content-type": "application/octet-stream" }, body: await file.arrayBuffer() };
    const r = await fetch("/v1/predict", init);
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) {
      out.replaceChildren(el("p", { class: "error", data: { status: String(r.status) },
        text: "HTTP " + r.status + ": " + (body && body.error ? body.error : r.statusText) }));
      return;
    }
    const preds = body.predictions;
    if (preds[0].label === null) {   // the signal check refused the window: no bearing diagnosis
      const f = preds[0].sensor_fault || {};
      out.replaceChildren(el("p", {}, "Sensor fault: ", el("span", { class: "label", id: "try-fault", text: f.kind || "?" }),
        el("span", { class: "muted", text: "  " + (f.message || "") })));
      return;
    }
    const rows = [el("p", {}, "Diagnosis: ", el("span", { class: "label", id: "try-label", text: preds[0].label }),
      preds.length > 1 ? " (first of " + preds.length + " windows)" : "", el("span", { class: "muted", text: "  " + body.latency_ms + " ms, " + body.model }))];
    for (const [c, p] of Object.entries(preds[0].probabilities))
      rows.push(el("div", { class: "bar" }, el("span", { text: c }), el("span", { class: "fill", style: { width: Math.max(1, 200 * p) + "px", background: color(c) } }), el("span", { class: "num", text: fmt(p, 3) })));
    out.replaceChildren(...rows);
  } catch (e) {
    out.replaceChildren(el("p", { class: "error", text: "could not reach the service: " + e.message }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("try-form").addEventListener("submit", tryIt);
  tick();
});
