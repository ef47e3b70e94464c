#!/usr/bin/env bash
# build.sh [OUTDIR]: the web page's files from src/ and the npm packages
# that package-lock.json pins: npm ci, then esbuild bundles src/app.js
# and src/app.css (with xterm's and uPlot's), and src/vnc.js (noVNC) into OUTDIR (../assets, which
# go:embed serves and git keeps, so go build needs no npm). built.sha256
# records the inputs' and outputs' hashes: internal/ui's tests fail when
# they differ from the files (sources changed, assets not rebuilt).
#   build.sh --check: rebuild into a scratch directory and compare with ../assets.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ "${1:-}" = --check ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	"$here/build.sh" "$tmp" >/dev/null
	if ! cmp -s "$tmp/.built.sha256" built.sha256; then
		echo "ui: internal/ui/assets are stale (or were edited by hand): run make ui-assets and commit them" >&2
		diff "$tmp/.built.sha256" built.sha256 >&2 || true
		exit 1
	fi
	echo "ui: internal/ui/assets are what src/ and package-lock.json build"
	exit 0
fi
out=${1:-../assets}
mkdir -p "$out"
out=$(cd "$out" && pwd)
npm ci --no-audit --no-fund --loglevel=error
esbuild=node_modules/.bin/esbuild
"$esbuild" src/app.js --bundle --minify --format=iife --target=es2020 --external:./vnc.js --legal-comments=eof --log-level=warning --outfile="$out/app.js"
# The graphical console (noVNC) on its own, loaded when it is opened: a
# module, since noVNC's waits at top level.
"$esbuild" src/vnc.js --bundle --minify --format=esm --target=es2022 --legal-comments=eof --log-level=warning --outfile="$out/vnc.js"
"$esbuild" src/app.css --bundle --minify --legal-comments=eof --log-level=warning --outfile="$out/app.css"
cp src/index.html "$out/index.html"
# Inputs, then outputs (paths relative to this directory).
sums=$( { sha256sum build.sh package.json package-lock.json $(ls src/*); (cd "$out" && sha256sum app.css app.js index.html vnc.js | sed 's,  ,  ../assets/,'); } )
if [ "$out" = "$(cd ../assets && pwd)" ]; then
	echo "$sums" > built.sha256
else
	echo "$sums" > "$out/.built.sha256"
fi
echo "ui: built $out ($(du -k "$out/app.js" | cut -f1) KiB of script, $(du -k "$out/vnc.js" | cut -f1) KiB of graphical console, $(du -k "$out/app.css" | cut -f1) KiB of style)"
