#!/usr/bin/env bash
# One-time set-up of a fresh clone: system packages the tests use (nginx, promtool), Node 24
# when the machine's node is older than the project needs, then the npm dependencies and a build.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
if ! node_ok; then
  echo "setup: node $(node --version 2>/dev/null || echo none) is too old; installing Node 24 into .tools/node"
  npm install --silent --no-save --no-package-lock --prefix .tools/node node@24 >/dev/null
  . scripts/node-env.sh
  node_ok || { echo "setup: Node 24 install failed" >&2; exit 1; }
fi
echo "setup: using node $(node --version)"
npm ci --no-audit --no-fund
npm run build
