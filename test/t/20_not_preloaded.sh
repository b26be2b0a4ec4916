#!/usr/bin/env bash
# The harness runs a second throwaway cluster that does not preload
# cal_refresh, for the insecure-configuration tests.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cluster_start nopreload no
trap 'cluster_stop nopreload' EXIT
is "$(cpsql nopreload postgres -At -c 'SHOW shared_preload_libraries')" "" \
	"second cluster: nothing preloaded"
is "$(cpsql main postgres -At -c 'SHOW shared_preload_libraries')" "cal_refresh" \
	"main cluster: cal_refresh preloaded"
t_done
