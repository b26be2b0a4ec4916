#!/usr/bin/env bash
# What the harness installs, and the one way it installs it: only the
# Debian packages missing, so a prepared machine pays nothing; as root, or
# through sudo.  Sourced by test/lib.sh, test/chroot.sh and .ci/run; run as
# `bash test/packages.sh PKG...` by the Makefile.

# The packages a build of the extension needs, for PostgreSQL major $1.
cal_build_packages() {
	echo "postgresql-server-dev-$1 libcurl4-openssl-dev libcjson-dev gcc make libc6-dev"
}

# install_missing PKG...: installs those of the packages not installed yet
# (apt-get update first).  CAL_APT_ROOT=DIR installs into that chroot.
install_missing() {
	local missing="" p sudo=""
	local -a in_root=()
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	[ -n "${CAL_APT_ROOT:-}" ] && in_root=(chroot "$CAL_APT_ROOT")
	for p in "$@"; do
		"${in_root[@]}" dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	printf 'installing:%s\n' "$missing" >&2
	$sudo "${in_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	# shellcheck disable=SC2086  # a list of package names
	$sudo "${in_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $missing >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	install_missing "$@"
fi
