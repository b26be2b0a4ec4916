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

# shellcheck source=test/chroot.sh
. "$CAL_TOP/test/chroot.sh"

[ "$(id -u)" -eq 0 ] || { log "test-matrix needs root (debootstrap, chroot)"; exit 2; }

run_release() {
	local release=$1
	local dir=$base/$release pristine=$base/$release-package
	local major summary package=failed
	log "== $release: a fresh minimal chroot"
	chroot_make "$release" "$dir"
	# A copy before anything is installed, for the package's own test.
	chroot_remove "$pristine"
	cp -a "$dir" "$pristine"
	chroot_mount "$dir"
	chroot_copy_source "$dir"

	summary="suite not run"
	if [[ " $parts " == *" test "* ]]; then
		log "== $release: the whole suite (bash .ci/run, as CI runs it)"
		set +e
		in_chroot "$dir" /bin/bash -c 'cd /src/cal_refresh && CI=true CAL_BUILD_MAJORS=0 bash .ci/run' \
			>"$base/$release.test.log" 2>&1
		set -e
		summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$base/$release.test.log" | tail -1)
	fi

	log "== $release: the Debian package, built there and installed in a fresh chroot"
	[[ " $parts " == *" package "* ]] || package="not built"
	if [ "$package" != "not built" ] &&
		in_chroot "$dir" /bin/bash -c 'set -e
			cd /src/cal_refresh && { command -v make >/dev/null || bash test/packages.sh make; }
			make deb' \
		>"$base/$release.deb.log" 2>&1; then
		chroot_mount "$pristine"
		mkdir -p "$pristine/debs"
		cp "$dir"/src/cal_refresh/dist/*.deb "$pristine/debs/"
		chroot_copy_source "$pristine"
		if in_chroot "$pristine" /bin/bash -c '
			set -e
			cd /src/cal_refresh && bash test/packages.sh make python3
			apt-get install -y -qq --no-install-recommends /debs/*.deb
			CAL_INSTALLED=1 make demo' \
			>"$base/$release.package.log" 2>&1 &&
			grep -q 'Cal.com stand-in calls: refresh=1 force_refresh=0' "$base/$release.package.log"; then
			package=ok
		fi
		chroot_unmount "$pristine"
	fi
	major=$(in_chroot "$dir" /bin/bash -c 'ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1' || true)
	chroot_unmount "$dir"
	printf 'PostgreSQL %s (%s): %s; package %s\n' "${major:-?}" "$release" \
		"${summary:-no summary line}" "$package" >>"$base/matrix.txt"
	if [ "${CAL_MATRIX_KEEP:-0}" != 1 ]; then
		chroot_remove "$dir" || true
		chroot_remove "$pristine" || true
	fi
}

ensure_debootstrap
mkdir -p "$base"
: >"$base/matrix.txt"
for r in $releases; do
	run_release "$r" || printf 'PostgreSQL ? (%s): the chroot could not be made\n' "$r" >>"$base/matrix.txt"
done
echo "test-matrix (logs in $base):"
cat "$base/matrix.txt"
! grep -v -E ': [0-9]+ passed, 0 failed; package ok$' "$base/matrix.txt" >/dev/null
