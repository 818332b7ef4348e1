"""Every metric the service exports is documented in docs/serve.md (name, type, labels), and the doc's
table lists nothing the service does not export."""

from __future__ import annotations

import re
from pathlib import Path

from cascadeprune.serve.metrics import Metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "serve.md"


def exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exposed name -> (type, label names), from the service's own registry."""
    m = Metrics()
    out = {}
    for family in m.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = set()
        for s in family.samples:
            labels |= set(s.labels) - {"le"}
        out[name] = (family.type, tuple(sorted(labels)))
    # labelled metrics have no samples before their first use: take their label names from the objects
    for attr in vars(m).values():
        names = getattr(attr, "_labelnames", None)
        if names:
            base = attr._name + ("_total" if attr._type == "counter" else "")
            out[base] = (out[base][0], tuple(sorted(names)))
    return out


def doc_rows() -> dict[str, tuple[str, str]]:
    """Metric -> (type, labels cell) from the table under '## Metrics'."""
    text = DOC.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`(cascadeprune_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_every_exported_metric_is_documented_with_type_and_labels():
    have, doc = exported(), doc_rows()
    assert len(have) >= 10
    missing = sorted(set(have) - set(doc))
    assert not missing, f"exported but not in docs/serve.md: {missing}"
    extra = sorted(set(doc) - set(have))
    assert not extra, f"in docs/serve.md but not exported: {extra}"
    for name, (kind, labels) in have.items():
        assert doc[name][0] == kind, (name, doc[name][0], kind)
        documented = set(re.findall(r"`(\w+)`", doc[name][1]))
        assert set(labels) <= documented, (name, labels, doc[name][1])
        assert bool(labels) == bool(doc[name][1].strip()), (name, "labels documented for an unlabelled metric")


def test_the_exposition_has_no_other_metric_names():
    """What /metrics prints after every metric was touched: each sample name maps to a documented one."""
    m = Metrics()
    m.requests.labels(path="/health", status="200").inc()
    m.errors.labels(kind="x").inc()
    m.mqtt.labels(direction="in", kind="vibration").inc()
    m.mqtt_dropped.labels(reason="duplicate").inc()
    m.sensor_faults.labels(kind="flat").inc()
    m.on_batch(1, 0.001)
    m.latency.observe(0.001)
    text = m.render()[0].decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    doc = set(doc_rows())
    for n in names:
        base = re.sub(r"_(bucket|sum|count|created)$", "", n)
        assert n in doc or base in doc or n.replace("_created", "_total") in doc, n
