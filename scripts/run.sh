#!/usr/bin/env bash
# Set up (first time) and serve the registry at http://127.0.0.1:5000 on the SQLite database
# in the instance folder (./instance, or $CIVIC_INSTANCE_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export FLASK_APP=app
.venv/bin/flask --app app init-db
exec .venv/bin/flask --app app run --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" --with-threads
