#!/usr/bin/env bash
# The version lives in one place (cal_refresh.control): META.json and
# debian/changelog must agree with it, and META.json must be valid PGXN
# metadata (meta-spec 1.0.0).  A META.json that disagrees is refused.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cd "$CAL_TOP"
like "$(perl test/check_version.pl 2>&1)" "^version [0-9.]+ agrees" \
	"cal_refresh.control, META.json and debian/changelog carry one version"
like "$(perl test/check_meta.pl META.json 2>&1)" "is OK" "META.json is valid PGXN metadata"
bad=$CAL_WORK/packaging
mkdir -p "$bad"
sed 's/"version": "[0-9.]*"/"version": "9.9"/' META.json >"$bad/META.json"
like "$(perl test/check_meta.pl "$bad/META.json" 2>&1 || true)" "version: not SemVer" \
	"a META.json whose version is not SemVer is refused"
t_done
