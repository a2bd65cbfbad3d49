#!/usr/bin/env bash
# Put promtool (from Debian's prometheus package, unpacked, never started) on PATH as /usr/local/bin/promtool.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || { apt-get update -qq && (cd "$tmp" && apt-get download -qq prometheus); }
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
rm -rf "$tmp"
