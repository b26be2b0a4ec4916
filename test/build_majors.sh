#!/usr/bin/env bash
# The extension compiled with -Wall -Wextra -Werror against every PostgreSQL
# major this machine's Debian mirror offers besides the machine's own, each
# in a minimal chroot of the release that ships it.  .ci/run runs this on
# every submission, beside `make test`; the whole suite on those majors is
# `make test-matrix`, by hand.
#
# The chroots are cached in $CAL_BUILD_CACHE between runs: a cold run pays
# debootstrap and the server-dev package, a warm one only the compile.  One
# line per major, "build PostgreSQL NN (release): ok|FAILED ..."; exits
# non-zero when any build fails or its chroot cannot be made.  As root.
#
#   CAL_BUILD_RELEASES="trixie sid"   the releases to build on (the default)
#   CAL_BUILD_CACHE=DIR               where the chroots live
#   CAL_BUILD_REFRESH=1               rebuild the chroots from scratch
set -uo pipefail

CAL_TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=test/chroot.sh
. "$CAL_TOP/test/chroot.sh"

releases=${CAL_BUILD_RELEASES:-trixie sid}
cache=${CAL_BUILD_CACHE:-/var/cache/cal_refresh/build-roots}

[ "$(id -u)" -eq 0 ] || { log "build_majors needs root (debootstrap, chroot)"; exit 2; }

# This machine's own major is built by `make test` already.
own_major=$( (apt-cache depends postgresql 2>/dev/null || true) |
	sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)

# ready_root RELEASE DIR: makes (cold) or reuses (warm) the release's chroot
# with the server-dev package of its PostgreSQL; prints that major.
ready_root() {
	local release=$1 dir=$2 major
	if [ "${CAL_BUILD_REFRESH:-0}" != 1 ] && [ -s "$dir/.cal-build-major" ]; then
		cat "$dir/.cal-build-major"
		return 0
	fi
	chroot_make "$release" "$dir" || return 1
	mount -t proc proc "$dir/proc"
	major=$(in_chroot "$dir" /bin/sh -c 'apt-get update -qq >/dev/null 2>&1;
		apt-cache depends postgresql' |
		sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
	# What the compile needs, and no more (server-dev brings clang and llvm).
	# shellcheck disable=SC2046  # a list of package names
	if [ -z "$major" ] ||
		! CAL_APT_ROOT=$dir install_missing $(cal_build_packages "$major") \
			>"$dir.install.log" 2>&1; then
		log "$release: installing postgresql-server-dev-${major:-?} failed:"
		tail -20 "$dir.install.log" >&2
		chroot_unmount "$dir"
		return 1
	fi
	in_chroot "$dir" apt-get clean >/dev/null 2>&1
	chroot_unmount "$dir"
	echo "$major" >"$dir/.cal-build-major"
	cat "$dir/.cal-build-major"
}

# build RELEASE: one line saying how the compile on the release's major went.
build() {
	local release=$1 dir=$cache/$1 start=$SECONDS kind=warm major
	[ -s "$dir/.cal-build-major" ] && [ "${CAL_BUILD_REFRESH:-0}" != 1 ] || kind=cold
	if ! major=$(ready_root "$release" "$dir"); then
		echo "build PostgreSQL ? ($release): FAILED, no chroot ($kind, $((SECONDS - start)) s)"
		return 1
	fi
	if [ "$major" = "$own_major" ]; then
		echo "build PostgreSQL $major ($release): skipped, this machine's own major"
		return 0
	fi
	chroot_copy_source "$dir"
	# with_llvm=no: the bitcode is PGXS's business, not a compile check.
	if in_chroot "$dir" make -C /src/cal_refresh -s -j2 with_llvm=no \
		PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >"$dir.build.log" 2>&1; then
		echo "build PostgreSQL $major ($release): ok ($kind, $((SECONDS - start)) s)"
	else
		echo "build PostgreSQL $major ($release): FAILED ($kind, $((SECONDS - start)) s)"
		sed 's/^/    /' "$dir.build.log" | head -40
		return 1
	fi
}

ensure_debootstrap >/dev/null || { log "cannot install debootstrap"; exit 2; }
mkdir -p "$cache"
# One run at a time per cache; the releases side by side (a cold run waits
# mostly on the network).
exec 9>"$cache/.lock"
flock 9
rc=0
pids=""
for r in $releases; do
	build "$r" >"$cache/$r.result" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || rc=1; done
for r in $releases; do cat "$cache/$r.result"; done
exit $rc
