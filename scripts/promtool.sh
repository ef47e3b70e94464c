#!/usr/bin/env bash
# promtool.sh DIR: put Prometheus' promtool in DIR (for the alert rule
# tests). It comes from Debian's prometheus package, downloaded and
# extracted, not installed: installing would start a Prometheus server.
set -euo pipefail
dir=${1:-.cache/promtool}
if [ -x "$dir/promtool" ] && "$dir/promtool" --version >/dev/null 2>&1; then
	exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download prometheus >/dev/null 2>&1; then
	apt-get update -qq
	apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb root
cd - >/dev/null
cp "$tmp/root/usr/bin/promtool" "$dir/promtool"
"$dir/promtool" --version | head -1
