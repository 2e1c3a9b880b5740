#!/usr/bin/env bash
# Sets up a fresh machine: Debian packages (when missing), the virtual environment, Python packages.
# Usage: scripts/setup.sh [--dev] [--postgres]
#   --dev       adds the test tools and Chromium for browser tests
#   --postgres  adds Debian's PostgreSQL server (also when CIVIC_TEST_POSTGRES=1): the tests'
#               throwaway cluster (CIVIC_TEST_DATABASE=postgres) or a registry on this machine
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=""
POSTGRES=${CIVIC_TEST_POSTGRES:-0}
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=--dev ;;
    --postgres) POSTGRES=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
[ "$DEV" = "--dev" ] && { [ -x /usr/bin/chromium ] || need_apt+=(chromium); dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk); }
[ "$POSTGRES" = 1 ] && { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql); }
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
REQ=requirements.txt
[ "$DEV" = "--dev" ] && REQ=requirements-dev.txt
$PIP install -r "$REQ"
# face_recognition's metadata asks for the "dlib" source package (a 13-minute build);
# dlib-bin from requirements.txt provides the same module, so skip its dependencies.
$PIP install --no-deps face_recognition==1.3.0
# The console's Chinese: its gettext catalogue compiled (translations/, scripts/translations.sh).
scripts/translations.sh compile
