#!/usr/bin/env bash
# A one-command demo, offline: set up, load the demo registry (demo/), register a kiosk, serve
# the registry and play demo/visit.mp4 through the kiosk with its screen on, paced for people
# to watch (kiosk --demo: the video waits at the greeting, the blink, the case file and the
# ticket, the screen says when it is over and plays it again), until Ctrl-C. With --once: play
# the video once (not paced), check that someone was greeted and their session reached the
# registry, stop, and exit non-zero otherwise.
# Environment: DEMO_INSTANCE (default ./instance-demo, wiped at each run), DEMO_PORT (5000),
# DEMO_SCREEN_PORT (8765), DEMO_SKIP_SETUP=1 (the tests: already set up).
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE=""
[ "${1:-}" = "--once" ] && ONCE=1
[ -n "${DEMO_SKIP_SETUP:-}" ] || scripts/setup.sh

export CIVIC_INSTANCE_PATH="${DEMO_INSTANCE:-$PWD/instance-demo}"
PORT="${DEMO_PORT:-5000}"
SCREEN_PORT="${DEMO_SCREEN_PORT:-8765}"
USER_NAME=demo
PASSWORD=demo-password-2026
PY=.venv/bin/python
FLASK=".venv/bin/flask --app app"

rm -rf "$CIVIC_INSTANCE_PATH"
$FLASK init-db >/dev/null
CIVIC_PASSWORD="$PASSWORD" $FLASK create-user "$USER_NAME" --role admin </dev/null >/dev/null
echo "demo: loading demo/records.csv with demo/photos and demo/cases.csv"
$FLASK import-records demo/records.csv --photos demo/photos --cases demo/cases.csv
TOKEN=$($FLASK register-device demo-kiosk --kind kiosk --site demo-hall | tail -n 1)

SERVER=""
KIOSK=""
cleanup() {
  for pid in $KIOSK $SERVER; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

.venv/bin/waitress-serve --host 127.0.0.1 --port "$PORT" --threads 8 --call app:create_app \
  >"$CIVIC_INSTANCE_PATH/server.log" 2>&1 &
SERVER=$!
# The kiosk fetches its gallery when it starts: let the registry answer first.
$PY - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("demo: the registry did not start; see instance-demo/server.log")
PY

EVENTS="$CIVIC_INSTANCE_PATH/kiosk-events.jsonl"
mkdir -p "$CIVIC_INSTANCE_PATH/speech"
KIOSK_ARGS=(--server "http://127.0.0.1:$PORT" --camera demo/visit.mp4 --screen-port "$SCREEN_PORT"
            --store "$CIVIC_INSTANCE_PATH/kiosk.db" --events "$EVENTS"
            --speech "$CIVIC_INSTANCE_PATH/speech/said.wav")
if [ -n "$ONCE" ]; then KIOSK_ARGS+=(--exit-at-end --headless); else KIOSK_ARGS+=(--realtime --demo); fi
CIVIC_DEVICE_TOKEN="$TOKEN" $PY -m kiosk "${KIOSK_ARGS[@]}" 2>"$CIVIC_INSTANCE_PATH/kiosk.log" &
KIOSK=$!

cat <<TEXT

  Kiosk screen    http://127.0.0.1:$SCREEN_PORT/
  Clerk console   http://127.0.0.1:$PORT/   (sign in as $USER_NAME / $PASSWORD)
  What the kiosk said: $CIVIC_INSTANCE_PATH/speech/said*.wav; its events: $EVENTS

TEXT

if [ -z "$ONCE" ]; then
  echo "demo: playing demo/visit.mp4 through the kiosk, paced to watch; at its end the screen"
  echo "      says so and 'Play again' replays it; Ctrl-C stops the demo"
  wait "$KIOSK" || true
  echo "demo: the kiosk has stopped; the console stays up until Ctrl-C"
  wait "$SERVER"
  exit 0
fi

wait "$KIOSK" || { echo "demo: the kiosk failed; see $CIVIC_INSTANCE_PATH/kiosk.log"; exit 1; }
$PY - "$EVENTS" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
greeted = [e for e in events if e["event"] == "greeted"]
uploaded = {e["session_id"] for e in events if e["event"] == "session_uploaded"}
for e in greeted:
    state = "in the registry" if e["session_id"] in uploaded else "NOT delivered"
    print(f"demo: greeted {e['name']} {e['t']:.2f} s into the video (distance {e['distance']:.2f}); session {state}")
sys.exit(0 if greeted and all(e["session_id"] in uploaded for e in greeted) else 1)
PY
