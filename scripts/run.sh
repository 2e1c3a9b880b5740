#!/usr/bin/env bash
# Set up (first time) and serve the registry at http://127.0.0.1:5000 on the SQLite database
# in the instance folder (./instance, or $CIVIC_INSTANCE_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# init-db also prints what an admin must look at: a half-done reencode, or devices of several
# sites that each hold every citizen (gallery.by_site off)
.venv/bin/flask --app app init-db
echo "serving on http://${HOST:-127.0.0.1}:${PORT:-5000} (instance: ${CIVIC_INSTANCE_PATH:-./instance})"
# --max-request-body-size: waitress refuses a larger body before buffering it (the app then
# caps every request but an admin's bulk upload at 4 MB before reading it).
exec .venv/bin/waitress-serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" --threads 8 \
  --max-request-body-size=536870912 --call app:create_app
