#!/usr/bin/env bash
# The walkthrough of docs/serve.md, runnable as written by root and by any other user: a Mosquitto
# broker with a persistence folder of its own, `cascadeprune serve` over HTTP and MQTT, and the
# window.json / window.f32 files cut from a recording with `cascadeprune data window`.
#
#   tools/serve_walkthrough.sh [ARTIFACT]     # default demo-out/deploy/compressed.onnx (make demo)
#
# Everything goes to ./walkthrough/. MQTT_PORT and HTTP_PORT override 1883 and 8080; PYTHON the
# interpreter (default: python, e.g. the activated .venv). Needs mosquitto, mosquitto_pub/_sub, curl.
set -euo pipefail
ART=${1:-demo-out/deploy/compressed.onnx}
MQTT_PORT=${MQTT_PORT:-1883}
HTTP_PORT=${HTTP_PORT:-8080}
PY=${PYTHON:-python}
W=walkthrough
[ -f "$ART/deploy.json" ] || { echo "no export at $ART: run make demo, or pass an export directory" >&2; exit 2; }
mkdir -p "$W/mosquitto-data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
step() { printf '\n$ %s\n' "$*"; }

# 1. the broker: persistence in a folder the current user owns
cat > "$W/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $PWD/$W/mosquitto-data/
autosave_interval 1
autosave_on_changes true
max_queued_messages 0
set_tcp_nodelay true
user $(id -un)
CONF
mosquitto -c "$W/mosquitto.conf" >"$W/mosquitto.log" 2>&1 &
pids+=($!)

# 2. a recording (2 s of a simulated inner-race fault at 3 hp, one sample per line) and two windows cut from it
"$PY" -c "import numpy as np; from cascadeprune.tasks.bearing.simulator import simulate; \
np.savetxt('$W/pump7.csv', simulate('inner', load_hp=3, seed=7).signal)"
step cascadeprune data window "$W/pump7.csv" --model "$ART" --fs 12000 --offset 0 --id pump7-000123 --out "$W/window.json"
"$PY" -m cascadeprune data window "$W/pump7.csv" --model "$ART" --fs 12000 --offset 0 --id pump7-000123 \
    --out "$W/window.json" --overwrite
step cascadeprune data window "$W/pump7.csv" --model "$ART" --fs 12000 --offset 0 --format f32 --out "$W/window.f32"
"$PY" -m cascadeprune data window "$W/pump7.csv" --model "$ART" --fs 12000 --offset 0 --format f32 \
    --out "$W/window.f32" --overwrite
WINDOW=$("$PY" -c "import json; print(json.load(open('$ART/deploy.json'))['window'])")
"$PY" -c "import json; print(json.dumps({'id': 'pump7-000125', 'signal': [0.0] * $WINDOW}))" >"$W/flat.json"

# 3. the service
"$PY" -m cascadeprune serve "$ART" --http "127.0.0.1:$HTTP_PORT" --mqtt "mqtt://127.0.0.1:$MQTT_PORT" \
    --topic-prefix plant/line3 --client-id line3-diagnosis 2>"$W/serve.log" &
SERVE=$!
pids+=($SERVE)
for _ in $(seq 300); do curl -sf "localhost:$HTTP_PORT/health" >/dev/null && grep -q subscribed "$W/serve.log" && break; sleep 0.2; done
H=localhost:$HTTP_PORT
step curl -s $H/health
curl -s "$H/health"; echo
step curl -s -H "'Content-Type: application/json'" --data @window.json $H/v1/predict
curl -s -H 'Content-Type: application/json' --data @"$W/window.json" "$H/v1/predict"; echo
step curl -s -H "'Content-Type: application/octet-stream'" --data-binary @window.f32 $H/v1/predict
curl -s -H 'Content-Type: application/octet-stream' --data-binary @"$W/window.f32" "$H/v1/predict"; echo
step curl -s -H "'Content-Type: application/json'" --data @flat.json $H/v1/predict
curl -s -H 'Content-Type: application/json' --data @"$W/flat.json" "$H/v1/predict"; echo
step curl -s -w "' %{http_code}\n'" -H "'Content-Type: application/json'" -d "'{\"signal\": [0.1, 0.2]}'" $H/v1/predict
curl -s -w ' %{http_code}\n' -H 'Content-Type: application/json' -d '{"signal": [0.1, 0.2]}' "$H/v1/predict"

# 4. MQTT: four messages in, four answers out
mosquitto_sub -p "$MQTT_PORT" -h 127.0.0.1 -t 'plant/line3/+/diagnosis' -t 'plant/line3/+/error' -q 1 -v -C 4 \
    >"$W/answers.txt" &
SUB=$!
sleep 0.5
pub() { mosquitto_pub -p "$MQTT_PORT" -h 127.0.0.1 -q 1 -t plant/line3/pump-7/vibration "$@"; }
step mosquitto_pub -h 127.0.0.1 -q 1 -t plant/line3/pump-7/vibration -f window.json; pub -f "$W/window.json"
step mosquitto_pub -h 127.0.0.1 -q 1 -t plant/line3/pump-7/vibration -f window.f32; pub -f "$W/window.f32"
step mosquitto_pub -h 127.0.0.1 -q 1 -t plant/line3/pump-7/vibration -f flat.json; pub -f "$W/flat.json"
step mosquitto_pub -h 127.0.0.1 -q 1 -t plant/line3/pump-7/vibration -m "'{\"id\": \"pump7-000124\", \"signal\": [0.1, NaN]}'"
pub -m '{"id": "pump7-000124", "signal": [0.1, NaN]}'
wait "$SUB"
printf '\nanswers (mosquitto_sub -v):\n'; cat "$W/answers.txt"
step "curl -s $H/metrics | grep -E '^cascadeprune_(sensor_faults|mqtt_messages|mqtt_dropped|errors)_total'"
curl -s "$H/metrics" | grep -E '^cascadeprune_(sensor_faults|mqtt_messages|mqtt_dropped|errors)_total'

# 5. SIGTERM: drain, exit 0
kill -TERM "$SERVE"; wait "$SERVE" && echo "serve exited 0"
printf '\nservice log (stderr, JSON lines):\n'; cat "$W/serve.log"
