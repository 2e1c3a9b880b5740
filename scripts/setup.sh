#!/usr/bin/env bash
# Sets up a fresh machine: Debian packages (when missing), the virtual environment, Python packages.
# Usage: scripts/setup.sh [--dev]   (--dev adds the test tools and Chromium for browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=${1:-}

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
[ "$DEV" = "--dev" ] && { [ -x /usr/bin/chromium ] || need_apt+=(chromium); dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk); }
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
