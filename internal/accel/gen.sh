#!/bin/sh
# Assemble probe.S into probe.bin (GNU as + ld, from binutils).
set -e
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as -o "$tmp/probe.o" probe.S
ld -Ttext=0x7c00 --oformat=binary -o "$tmp/probe.bin" "$tmp/probe.o"
cp "$tmp/probe.bin" probe.bin
