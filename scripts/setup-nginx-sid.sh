#!/usr/bin/env bash
# Step of scripts/setup.sh: an nginx >= 1.27.3 beside Debian 12's 1.22, for DNS mode (zone
# upstreams with `server NAME service=... resolve`, which 1.22 lacks). Debian's sid suite serves
# one (1.30.x), but its binary needs a newer libc than bookworm's, so it gets its own root:
#   debootstrap --variant=minbase sid ROOT && chroot ROOT apt-get install nginx
# kept at a fixed path (default /var/cache/orchestry/nginx-sid, or $ORCHESTRY_NGINX_ROOT) and run
# on the host's file system through sid's own dynamic loader by scripts/nginx-sid (see there why).
# Idempotent: a root whose nginx runs is kept (a second run takes well under a second); a
# half-built one is removed and built again. Needs root (debootstrap, chroot) and the Debian mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ROOT="${ORCHESTRY_NGINX_ROOT:-/var/cache/orchestry/nginx-sid}"

if version="$("$here/nginx-sid" -v 2>&1)"; then
  echo "setup: ${version#nginx version: } present in $ROOT"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: the nginx >= 1.27.3 for the DNS-mode tests is missing ($ROOT); run scripts/setup.sh as root" >&2
  exit 1
fi
PATH="$PATH:/usr/sbin:/sbin"
command -v debootstrap >/dev/null || { echo "setup: debootstrap is missing" >&2; exit 1; }

# The mirror this machine's apt sources name for bookworm (ENVIRONMENT.md): deb822 stanzas first,
# then a classic sources.list line.
mirror="${ORCHESTRY_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
    /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = uri }
    /^[[:space:]]*$/ { uri = "" } END { print found }')"
fi
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") { print $i; exit } } }' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || { echo "setup: no Debian mirror for bookworm in the apt sources; set ORCHESTRY_DEBIAN_MIRROR" >&2; exit 1; }

partial="$ROOT.partial"
# debootstrap mounts /proc and /sys inside its target while it works: never delete through a
# mount that a failed run left behind.
unmount_under() {
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
}
if [ -e "$ROOT" ] && [ ! -f "$ROOT/etc/debian_version" ]; then
  echo "setup: $ROOT exists but is no Debian root; not replacing it" >&2
  exit 1
fi
unmount_under "$partial"
rm -rf "$partial" "$ROOT"
mkdir -p "$(dirname "$ROOT")"
started=$(date +%s)
echo "setup: building the nginx sid root in $ROOT from $mirror"
debootstrap --variant=minbase sid "$partial" "$mirror" >"$partial.log" 2>&1 || {
  tail -n 20 "$partial.log" >&2; unmount_under "$partial"; exit 1; }
# Packages must not start services: nginx's postinst would otherwise start an nginx on port 80
# of this machine (the chroot shares the host's network).
printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
chmod 755 "$partial/usr/sbin/policy-rc.d"
chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends nginx \
  >>"$partial.log" 2>&1 || { tail -n 20 "$partial.log" >&2; unmount_under "$partial"; exit 1; }
chroot "$partial" apt-get clean
rm -rf "$partial"/var/lib/apt/lists/* "$partial.log"
unmount_under "$partial"
mv "$partial" "$ROOT"
version="$("$here/nginx-sid" -v 2>&1)" || { echo "setup: the sid nginx does not run: $version" >&2; exit 1; }
echo "setup: ${version#nginx version: } ready in $ROOT ($(( $(date +%s) - started )) s)"
