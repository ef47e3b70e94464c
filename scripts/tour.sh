#!/usr/bin/env bash
# tour.sh: run the README's five-minute tour, command by command, as a
# newcomer would after `make demo`: every fenced block whose info string is
# "sh tour" runs in the repository (each line echoed, any failure stops the
# tour), and every "yaml tour FILE" block is saved as FILE first, with
# /path/to/godwit replaced by this checkout. The README and this check
# cannot drift: the commands are read from it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"; rm -f "$ROOT/web1.yaml"' EXIT

awk -v work="$work" '
	/^```/ && !inblock {
		inblock = 1; n++
		split(substr($0, 4), info, " ")
		kind = ""
		if (info[1] == "sh" && info[2] == "tour") { kind = "sh"; out = sprintf("%s/%02d.sh", work, n) }
		if (info[1] == "yaml" && info[2] == "tour") { kind = "yaml"; out = sprintf("%s/%02d.yaml %s", work, n, info[3]) }
		if (kind != "") print out > (work "/blocks")
		next
	}
	/^```/ && inblock { inblock = 0; kind = ""; next }
	inblock && kind != "" { split(out, o, " "); print > o[1] }
' README.md
[ -s "$work/blocks" ] || { echo "tour: no tour blocks in README.md" >&2; exit 1; }

# One shell for the whole tour, as a user's terminal is: exports and the
# alias carry from block to block.
script=$work/tour.sh
{
	echo 'set -eo pipefail'
	echo 'shopt -s expand_aliases'
	while read -r file name; do
		if [ -n "${name:-}" ]; then
			printf 'sed "s|/path/to/godwit|%s|g" %q > %q\n' "$ROOT" "$file" "$name"
			printf 'echo "tour: wrote %s"\n' "$name"
			continue
		fi
		# Each command echoed before it runs; continued lines stay whole.
		cmd=""
		while IFS= read -r line || [ -n "$line" ]; do
			cmd+="$line"$'\n'
			case $line in *\\) continue ;; esac
			printf 'echo %q\n%s' "+ ${cmd%$'\n'}" "$cmd"
			cmd=""
		done <"$file"
	done <"$work/blocks"
} >"$script"
bash "$script"
echo "tour: every command of the README's tour ran"
