#!/usr/bin/env bash
# Set up (if needed) and run the demo: a private Mosquitto, simulated sensors
# playing configs/scenarios/demo.yaml, the edge gateways, and a live feed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/sc demo "$@"
