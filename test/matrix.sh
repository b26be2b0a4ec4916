#!/usr/bin/env bash
# make test-matrix: the whole suite on each Debian release that ships
# another PostgreSQL major, each in a fresh minimal chroot; then the Debian
# package, built there, installed in a second fresh chroot of the same
# release, where the demo runs against it.  Prints one line per release.
# Run as root (debootstrap, chroot, mounts); Debian's registry is the only
# network it needs.
#
#   MATRIX="trixie sid" bash test/matrix.sh      (the default list)
#   CAL_MATRIX_PARTS="test package"  (the default; either alone works)
#   CAL_MATRIX_KEEP=1 keeps the chroots and their logs.
set -euo pipefail

CAL_TOP=$(cd "$(dirname "$0")/.." && pwd)
releases=${MATRIX:-trixie sid}
parts=${CAL_MATRIX_PARTS:-test package}
base=${CAL_MATRIX_DIR:-/var/tmp/cal_refresh-matrix}

log() { printf '%s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "test-matrix needs root (debootstrap, chroot)"; exit 2; }

# The mirror this machine's apt uses (deb822 or one-line sources).
mirror() {
	local m
	m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	printf '%s\n' "$m"
}

ensure_host_tools() {
	command -v debootstrap >/dev/null && return 0
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}

# Mount points, innermost first, for unmounting.
mounts_of() { awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r; }

unmount_all() {
	local m
	for m in $(mounts_of "$1"); do umount -l "$m" 2>/dev/null || true; done
}

remove_root() {
	[ -d "$1" ] || return 0
	unmount_all "$1"
	# Never remove through a live bind mount of /dev.
	if [ -n "$(mounts_of "$1")" ]; then
		log "still mounted under $1: left in place"
		return 1
	fi
	rm -rf --one-file-system "$1"
}

# make_root RELEASE DIR: a minimal chroot, ready to run apt and services.
make_root() {
	local release=$1 dir=$2
	remove_root "$dir"
	mkdir -p "$dir"
	debootstrap --variant=minbase "$release" "$dir" "$(mirror)" >"$dir.debootstrap.log" 2>&1 ||
		{ log "debootstrap $release failed:"; tail -20 "$dir.debootstrap.log" >&2; return 1; }
	# Mirrors serving a dated snapshot: sid's release file counts as expired.
	echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99cal-matrix"
	# No service starts when a package is installed.
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
}

mount_root() {
	local dir=$1
	mount -t proc proc "$dir/proc"
	mount -t sysfs sys "$dir/sys"
	mount --bind /dev "$dir/dev"
	mount --bind /dev/pts "$dir/dev/pts"
	mount -t tmpfs shm "$dir/dev/shm"
}

in_root() {
	local dir=$1
	shift
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The working tree as committed plus uncommitted changes, without build
# products, copied into the chroot.
copy_source() {
	local dest=$1/src/cal_refresh
	mkdir -p "$dest"
	(cd "$CAL_TOP" && git ls-files -co --exclude-standard -z) |
		(cd "$CAL_TOP" && xargs -0 tar cf - --no-recursion 2>/dev/null) |
		tar xf - -C "$dest"
}

run_release() {
	local release=$1
	local dir=$base/$release pristine=$base/$release-package
	local major summary package=failed
	log "== $release: a fresh minimal chroot"
	make_root "$release" "$dir"
	# A copy before anything is installed, for the package's own test.
	remove_root "$pristine"
	cp -a "$dir" "$pristine"
	mount_root "$dir"
	copy_source "$dir"

	summary="suite not run"
	if [[ " $parts " == *" test "* ]]; then
		log "== $release: the whole suite (bash .ci/run, as CI runs it)"
		set +e
		in_root "$dir" /bin/bash -c 'cd /src/cal_refresh && CI=true bash .ci/run' \
			>"$base/$release.test.log" 2>&1
		set -e
		summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$base/$release.test.log" | tail -1)
	fi

	log "== $release: the Debian package, built there and installed in a fresh chroot"
	[[ " $parts " == *" package "* ]] || package="not built"
	if [ "$package" != "not built" ] &&
		in_root "$dir" /bin/bash -c 'set -e
			command -v make >/dev/null || { apt-get update -qq; apt-get install -y -qq make; }
			cd /src/cal_refresh && make deb' \
		>"$base/$release.deb.log" 2>&1; then
		mount_root "$pristine"
		mkdir -p "$pristine/debs"
		cp "$dir"/src/cal_refresh/dist/*.deb "$pristine/debs/"
		copy_source "$pristine"
		if in_root "$pristine" /bin/bash -c '
			set -e
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends /debs/*.deb make python3
			cd /src/cal_refresh && CAL_INSTALLED=1 make demo' \
			>"$base/$release.package.log" 2>&1 &&
			grep -q 'Cal.com stand-in calls: refresh=1 force_refresh=0' "$base/$release.package.log"; then
			package=ok
		fi
		unmount_all "$pristine"
	fi
	major=$(in_root "$dir" /bin/bash -c 'ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1' || true)
	unmount_all "$dir"
	printf 'PostgreSQL %s (%s): %s; package %s\n' "${major:-?}" "$release" \
		"${summary:-no summary line}" "$package" >>"$base/matrix.txt"
	if [ "${CAL_MATRIX_KEEP:-0}" != 1 ]; then
		remove_root "$dir" || true
		remove_root "$pristine" || true
	fi
}

ensure_host_tools
mkdir -p "$base"
: >"$base/matrix.txt"
for r in $releases; do
	run_release "$r" || printf 'PostgreSQL ? (%s): the chroot could not be made\n' "$r" >>"$base/matrix.txt"
done
echo "test-matrix (logs in $base):"
cat "$base/matrix.txt"
! grep -v -E ': [0-9]+ passed, 0 failed; package ok$' "$base/matrix.txt" >/dev/null
