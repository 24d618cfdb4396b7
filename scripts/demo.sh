#!/usr/bin/env bash
# Installs what is missing, builds, and runs a live demo: producer and consumer processes on a
# local bus, printing rates once a second.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/tools/evring-demo "$@"
