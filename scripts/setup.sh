#!/usr/bin/env bash
# One-time set-up of a fresh clone: system packages the tests use (nginx, prometheus + promtool,
# prometheus-alertmanager, the Docker Engine, a static busybox for the test images, debootstrap, docker-compose,
# chromium), nginx >= 1.27.3 from Debian sid in its own root, a running dockerd, Node 24 when the machine's node is older than the project needs,
# then the npm dependencies and a build. Idempotent: run it on a fresh CI machine or again where
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# Debian's nginx has the stream (TCP) module as a dynamic module of its own package, which
# --no-install-recommends leaves out; the stream tests load it from this path.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# promtool checks /metrics; the prometheus server scrapes a sidecar in a test.
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
# The alerting tests deliver to a real Alertmanager on loopback.
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# The CLI alone (e.g. /usr/local/bin/docker) is not enough: the tests need the engine.
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
# Copied into the FROM-scratch test images as /bin/sh and /bin/wget: it must be the static one.
installed busybox-static || missing+=(busybox-static)
# The image and compose tests build a node:24-bookworm-slim stand-in from a debootstrapped root.
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# The compose smoke test: the v2 plugin (`docker compose`) where it exists, else Debian's v1 CLI.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# The status page test drives a real headless browser.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  # Wait for another apt/dpkg run (e.g. unattended upgrades) instead of failing on its lock.
  apt-get -o DPkg::Lock::Timeout=300 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
fi

# DNS mode needs nginx >= 1.27.3 (`server ... service=... resolve`); Debian 12 ships 1.22. Debian
# sid's nginx gets its own root, cached at /var/cache/orchestry/nginx-sid and run through
# scripts/nginx-sid (about 50 s the first time, instant afterwards). Without root it only warns,
# like the Docker engine below: the DNS-mode tests then fail saying what to run.
scripts/setup-nginx-sid.sh || [ "$(id -u)" -ne 0 ]

# The Docker tests need a running engine. Started the way ENVIRONMENT.md says: no bridge, no
# iptables (test containers use host networking on loopback). Left running for later test runs;
# stop it with: kill "$(cat /tmp/orchestry-dockerd.pid)".
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: the Docker Engine does not answer (not running, or no access to its socket); the Docker tests will fail until it does. As root:" >&2
    echo "  dockerd --bridge=none --iptables=false --ip-masq=false --live-restore >/tmp/orchestry-dockerd.log 2>&1 &" >&2
  else
    echo "setup: starting dockerd (log /tmp/orchestry-dockerd.log)"
    PATH="$PATH:/usr/sbin" setsid dockerd --bridge=none --iptables=false --ip-masq=false --live-restore \
      >/tmp/orchestry-dockerd.log 2>&1 </dev/null &
    echo $! >/tmp/orchestry-dockerd.pid
    for _ in $(seq 120); do
      docker info >/dev/null 2>&1 && break
      if ! kill -0 "$(cat /tmp/orchestry-dockerd.pid)" 2>/dev/null; then
        echo "setup: dockerd exited; last lines of /tmp/orchestry-dockerd.log:" >&2
        tail -n 20 /tmp/orchestry-dockerd.log >&2
        exit 1
      fi
      sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not answer within 60 s (see /tmp/orchestry-dockerd.log)" >&2; exit 1; }
    echo "setup: dockerd running (pid $(cat /tmp/orchestry-dockerd.pid))"
  fi
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
