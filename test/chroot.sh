# Minimal Debian chroots of other releases, for test/matrix.sh (the whole
# suite, by hand) and test/build_majors.sh (the compile on every major, in
# CI).  Sourced, never run; everything here needs root.

log() { printf '%s\n' "$*" >&2; }
# shellcheck source=test/packages.sh
. "$CAL_TOP/test/packages.sh"

# The mirror this machine's apt uses (deb822 or one-line sources).
chroot_mirror() {
	local m
	m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	printf '%s\n' "$m"
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null || install_missing debootstrap
}

# Mount points under DIR, innermost first, for unmounting.
chroot_mounts() { awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r; }

chroot_unmount() {
	local m
	for m in $(chroot_mounts "$1"); do umount -l "$m" 2>/dev/null || true; done
}

chroot_remove() {
	[ -d "$1" ] || return 0
	chroot_unmount "$1"
	# Never remove through a live bind mount of /dev.
	if [ -n "$(chroot_mounts "$1")" ]; then
		log "still mounted under $1: left in place"
		return 1
	fi
	rm -rf --one-file-system "$1"
}

# chroot_make RELEASE DIR: a minimal chroot, ready to run apt and services.
chroot_make() {
	local release=$1 dir=$2
	chroot_remove "$dir"
	mkdir -p "$dir"
	debootstrap --variant=minbase "$release" "$dir" "$(chroot_mirror)" >"$dir.debootstrap.log" 2>&1 ||
		{ log "debootstrap $release failed:"; tail -20 "$dir.debootstrap.log" >&2; return 1; }
	# Mirrors serving a dated snapshot: sid's release file counts as expired.
	echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99cal-chroot"
	# No service starts when a package is installed.
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
}

chroot_mount() {
	local dir=$1
	mount -t proc proc "$dir/proc"
	mount -t sysfs sys "$dir/sys"
	mount --bind /dev "$dir/dev"
	mount --bind /dev/pts "$dir/dev/pts"
	mount -t tmpfs shm "$dir/dev/shm"
}

# in_chroot DIR COMMAND...: COMMAND inside DIR with a clean environment.
in_chroot() {
	local dir=$1
	shift
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# chroot_copy_source DIR: the working tree as committed plus uncommitted
# changes, without build products, in DIR/src/cal_refresh (replaced).
chroot_copy_source() {
	local dest=$1/src/cal_refresh
	rm -rf "$dest"
	mkdir -p "$dest"
	(cd "$CAL_TOP" && git ls-files -co --exclude-standard -z) |
		(cd "$CAL_TOP" && xargs -0 tar cf - --no-recursion 2>/dev/null) |
		tar xf - -C "$dest"
}
