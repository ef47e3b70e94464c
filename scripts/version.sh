#!/bin/sh
# version.sh [DIR]: print godwit's version for the checkout in DIR (default:
# this one). `make build` links it into the binary (`godwit version`) and
# `make deb` names the package after it, so the two always agree. It is a
# valid Debian version (digits first; only letters, digits and . + ~):
#
#   tag v1.2.0 on HEAD          1.2.0
#   5 commits after it          1.2.0+5.g0123456789ab
#   tag v1.3.0-rc1              1.3.0~rc1  (sorts before 1.3.0, as Debian's ~ does)
#   no tag yet, 248 commits     0.0.0+248.g0123456789ab
#   uncommitted changes         ... .dirty (0.0.0+248.g0123456789ab.dirty, 1.2.0+dirty)
#   not a git checkout          0.0.0+unknown
set -eu
cd "${1:-$(dirname "$0")/..}"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo 0.0.0+unknown
	exit 0
fi
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=dirty
fi
hash=$(git rev-parse --short=12 HEAD)
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
	base=$(printf '%s' "${tag#v}" | tr -- '-_' '~~')
	n=$(git rev-list --count "$tag..HEAD")
else
	base=0.0.0
	n=$(git rev-list --count HEAD)
fi
extra=
[ "$n" != 0 ] && extra="$n.g$hash"
[ -n "$dirty" ] && extra="${extra:+$extra.}$dirty"
printf '%s%s\n' "$base" "${extra:++$extra}"
