#!/usr/bin/env bash
# Set up (first time) and serve the registry at http://127.0.0.1:5000 on the SQLite database
# in the instance folder (./instance, or $CIVIC_INSTANCE_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# init-db also prints what an admin must look at: a half-done reencode, or devices of several
# sites that each hold every citizen (gallery.by_site off)
.venv/bin/flask --app app init-db
# A server process per core (WORKERS=N to choose): one process's Python runs on one core at a
# time, and the schedules, the face index and the sign-in limits are shared through the
# database, so any process may answer any request. Each has 8 request threads (a request
# mostly waits on the database or on its face, which the process's face workers look at).
WORKERS=${WORKERS:-$(nproc)}
echo "serving on http://${HOST:-127.0.0.1}:${PORT:-5000} with $WORKERS processes" \
  "(instance: ${CIVIC_INSTANCE_PATH:-./instance})"
# No body is buffered by gunicorn: the app refuses one larger than MAX_CONTENT_LENGTH (512 MB,
# the bulk photo zip) from its Content-Length, before reading it, and caps every request but
# an admin's bulk upload at 4 MB. --forwarded-allow-ips "": the scheme and client address
# come from the app's PROXY_HOPS setting alone, never from a header gunicorn would trust
# from 127.0.0.1. --timeout is the workers' heartbeat (a long upload keeps beating).
exec .venv/bin/gunicorn --bind "${HOST:-127.0.0.1}:${PORT:-5000}" --workers "$WORKERS" \
  --worker-class gthread --threads 8 --forwarded-allow-ips "" --timeout 60 'app:create_app()'
