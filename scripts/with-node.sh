#!/usr/bin/env bash
# Runs a command with the project's Node (see setup.sh) first on PATH: `scripts/with-node.sh npm test`.
set -euo pipefail
# shellcheck source=scripts/node-env.sh
. "$(dirname "$0")/node-env.sh"
node_ok || { echo "Node >= 22.19 is required (found $(node --version 2>/dev/null || echo none)); run scripts/setup.sh" >&2; exit 1; }
exec "$@"
