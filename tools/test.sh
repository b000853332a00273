#!/usr/bin/env bash
# Every test: installs what is missing (apt-get, as root), builds, runs all suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
make check
