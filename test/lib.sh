# Shared shell functions for the harness (test/harness.sh) and the shell
# tests in test/t/: packages, throwaway clusters, the Cal.com stand-in and
# a few assertions.  Sourced, never run.
#
# PostgreSQL refuses to run as root, so when we are root every server
# command runs as the "postgres" OS user; a developer without root runs the
# clusters as themself and uses sudo only for packages and `make install`.

CAL_TOP=${CAL_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=test/packages.sh
. "$CAL_TOP/test/packages.sh"
CAL_CLIENT_ID=${CAL_CLIENT_ID:-cal-test-client}

# The distribution's own PostgreSQL major (bookworm 15, trixie 17, sid 18),
# from its "postgresql" package.
distribution_pg_major() {
	local v
	v=$( (apt-cache depends postgresql 2>/dev/null || true) |
		sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
	if [ -z "$v" ]; then
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		v=$( (apt-cache depends postgresql 2>/dev/null || true) |
			sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
	fi
	printf '%s\n' "$v"
}

# The PostgreSQL the harness uses: the one PG_CONFIG names, else the newest
# server installed, else the distribution's own (ensure_packages installs
# it).  Exported, so the test scripts agree with the harness.
pick_pg_major() {
	local v=""
	if [ -n "${PG_MAJOR:-}" ]; then
		v=$PG_MAJOR
	elif [ -n "${PG_CONFIG:-}" ] && [ -x "$PG_CONFIG" ]; then
		v=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
	fi
	[ -n "$v" ] || v=$( (ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null || true) |
		sed 's|^/usr/lib/postgresql/\([0-9]*\)/.*|\1|' | sort -n | tail -1)
	[ -n "$v" ] || v=$(distribution_pg_major)
	[ -n "$v" ] || { echo "no PostgreSQL major found (is apt set up?)" >&2; return 1; }
	PG_MAJOR=$v
	PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
	export PG_MAJOR
}

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
	PG_OS_USER=postgres
else
	SUDO="sudo"
	PG_OS_USER=$(id -un)
fi

export CAL_PG_OS_USER=$PG_OS_USER
pick_pg_major

# Debian's interpreter (installed below) starts faster than a version
# manager's shim, and the tests start it hundreds of times.
pick_python() {
	CAL_PYTHON=$(command -v /usr/bin/python3 || command -v python3 || echo python3)
	export CAL_PYTHON
}
pick_python

log() { printf '%s\n' "$*" >&2; }

# Run a command as the OS user that owns the clusters.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

# The clang major Debian's "clang" stands for (its fuzzer runtime is
# libclang-rt-N-dev).
clang_major() {
	if command -v clang >/dev/null 2>&1; then
		clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1
	else
		(apt-cache depends clang 2>/dev/null || true) |
			sed -n 's/^ *Depends: clang-\([0-9]*\)$/\1/p' | head -1
	fi
}

# Install the Debian packages the build, the clusters and the tests need,
# but only those missing, so a prepared machine pays nothing.  With
# CAL_INSTALLED=1 the extension comes from its Debian package: only what
# runs the demo is wanted.
ensure_packages() {
	if [ "${CAL_INSTALLED:-0}" = 1 ]; then
		install_missing "postgresql-$PG_MAJOR" python3 ca-certificates openssl
	else
		# shellcheck disable=SC2046  # a list of package names
		install_missing "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-cron" \
			$(cal_build_packages "$PG_MAJOR") python3 perl ca-certificates openssl \
			clang valgrind
		# The fuzzer runtime follows clang's major, known once clang is here.
		install_missing "libclang-rt-$(clang_major)-dev"
	fi
	pick_python
}

build_and_install() {
	make -C "$CAL_TOP" -s PG_CONFIG="$PG_BIN/pg_config" >&2
	$SUDO make -C "$CAL_TOP" -s PG_CONFIG="$PG_BIN/pg_config" install >&2
}

# A scratch directory for this run: clusters, logs, secret file.
make_workdir() {
	CAL_WORK=$(mktemp -d "${TMPDIR:-/tmp}/cal_refresh.XXXXXX")
	chmod 755 "$CAL_WORK"
	export CAL_WORK
}

free_port() {
	"$CAL_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The OAuth client secret lives in a file owned by the server's OS user,
# mode 0600, as the extension demands.
make_secret_file() {
	local dir=$CAL_WORK/secret
	install -d -m 755 "$dir"
	CAL_SECRET_FILE=$dir/calcom.key
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CAL_SECRET_FILE")
	chmod 600 "$CAL_SECRET_FILE"
	[ "$(id -u)" -eq 0 ] && chown "$PG_OS_USER" "$CAL_SECRET_FILE"
	export CAL_SECRET_FILE CAL_CLIENT_ID
}

start_standin() {
	local portfile=$CAL_WORK/standin.port
	# Its own copy: tests replace the server's file to provoke a 401.
	cp "$CAL_SECRET_FILE" "$CAL_WORK/standin.secret"
	"$CAL_PYTHON" "$CAL_TOP/test/calcom_standin.py" --client-id "$CAL_CLIENT_ID" \
		--secret-file "$CAL_WORK/standin.secret" --port-file "$portfile" \
		>"$CAL_WORK/standin.log" 2>&1 &
	CAL_STANDIN_PID=$!
	"$CAL_PYTHON" "$CAL_TOP/test/standin_ctl.py" wait-port "$portfile" --timeout 15 ||
		{ log "the stand-in did not start:"; cat "$CAL_WORK/standin.log" >&2; return 1; }
	CAL_STANDIN_PORT=$(cat "$portfile")
	CAL_STANDIN_URL=http://127.0.0.1:$CAL_STANDIN_PORT
	CAL_STANDIN_CTL="$CAL_PYTHON $CAL_TOP/test/standin_ctl.py"
	export CAL_STANDIN_PID CAL_STANDIN_PORT CAL_STANDIN_URL CAL_STANDIN_CTL
}

stop_standin() {
	if [ -n "${CAL_STANDIN_PID:-}" ]; then
		kill "$CAL_STANDIN_PID" 2>/dev/null || true
		wait "$CAL_STANDIN_PID" 2>/dev/null || true
		CAL_STANDIN_PID=""
	fi
}

# cluster_start NAME PRELOAD [extra postgresql.conf lines...]
# Starts a throwaway cluster in $CAL_WORK/NAME, listening only on a unix
# socket there.  PRELOAD is "yes" to put cal_refresh (and pg_cron) in
# shared_preload_libraries, "no" for a server that loads it on demand.
# Sets <NAME>_PORT, <NAME>_HOST and <NAME>_DATA.
cluster_start() {
	local name=$1 preload=$2
	shift 2
	local dir=$CAL_WORK/$name port
	port=$(free_port)
	install -d -m 755 "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$PG_OS_USER" "$dir"
	as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	{
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "max_worker_processes = 16"
		echo "max_prepared_transactions = 5"
		echo "log_line_prefix = '%m [%p] %u@%d '"
		# The whole suite runs at debug5; 99_no_secrets_in_log.sh then
		# greps the log for every token issued and for the secret.
		echo "log_min_messages = debug5"
		echo "cal_refresh.client_id = '$CAL_CLIENT_ID'"
		echo "cal_refresh.secret_key_file = '$CAL_SECRET_FILE'"
		echo "cal_refresh.api_url = '$CAL_STANDIN_URL'"
		# The stand-in has no rate limit; the rate-limit test sets its own.
		echo "cal_refresh.max_requests_per_minute = 0"
		if [ "$preload" = yes ]; then
			echo "shared_preload_libraries = 'cal_refresh'"
		fi
		local line
		for line in "$@"; do echo "$line"; done
	} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	# CAL_BEFORE_START: a command run between initdb and the start (the data
	# directory is "$1").
	if [ -n "${CAL_BEFORE_START:-}" ]; then
		bash -c "$CAL_BEFORE_START" _ "$dir/data" || return 1
	fi
	# CAL_POSTGRES_BIN runs the server through a wrapper (valgrind).
	as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 \
		-p "${CAL_POSTGRES_BIN:-$PG_BIN/postgres}" start \
		>/dev/null || { cat "$dir/server.log" >&2; return 1; }
	local up=${name^^}
	printf -v "${up}_PORT" '%s' "$port"
	printf -v "${up}_HOST" '%s' "$dir"
	printf -v "${up}_DATA" '%s' "$dir/data"
	export "${up}_PORT" "${up}_HOST" "${up}_DATA"
	CAL_CLUSTERS="${CAL_CLUSTERS:-} $name"
}

cluster_stop() {
	local dir=$CAL_WORK/$1
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}

stop_all() {
	local c
	for c in ${CAL_CLUSTERS:-}; do cluster_stop "$c"; done
	CAL_CLUSTERS=""
	stop_standin
}

# psql against a cluster: cpsql NAME DB [psql args...]
cpsql() {
	local up=${1^^} db=$2
	shift 2
	local host_var=${up}_HOST port_var=${up}_PORT
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "${!host_var}" -p "${!port_var}" \
		-U postgres -d "$db" "$@"
}

# make_test_db DB [EXPIRY_TYPE]: a database on the main cluster with the
# extension and an empty "CalendarIntegration" table (the columns the
# shell tests need; the expiry column timestamptz unless said otherwise).
make_test_db() {
	cpsql main postgres -c "CREATE DATABASE $1" >/dev/null
	cpsql main "$1" >/dev/null <<SQL
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" ${2:-timestamptz}, "calManagedUserId" int);
SQL
}

# readme_sql NAME: the README's SQL block under the line
# "<!-- test/t/NAME runs this block as written -->", so that a test runs
# what a reader copies, not a copy of it.
readme_sql() {
	awk -v mark="<!-- test/t/$1 runs this block as written -->" '
		$0 == mark { found = 1; next }
		found && /^```sql$/ { inside = 1; next }
		inside && /^```$/ { exit }
		inside { print }' "$CAL_TOP/README.md"
}

# poll_until DB SQL [TRIES]: runs SQL on the main cluster every 10 ms until
# it returns t; fails after TRIES runs (1,000 by default: 10 s and more).
poll_until() {
	local db=$1 sql=$2 tries=${3:-1000} _
	for _ in $(seq 1 "$tries"); do
		[ "$(cpsql main "$db" -At -c "$sql")" = t ] && return 0
		sleep 0.01
	done
	return 1
}

# signal_ms DB FUNCTION NAME: sends pg_cancel_backend or pg_terminate_backend
# to the session named NAME; prints the milliseconds until it stopped running
# a statement that mentions cal_ (measured on the server, 10 s at most).
signal_ms() {
	cpsql main "$1" -At 2>&1 <<SQL | sed -n 's/.*ms=//p'
DO \$\$
DECLARE
	victim int := (SELECT pid FROM pg_stat_activity WHERE application_name = '$3');
	t0 timestamptz;
BEGIN
	PERFORM $2(victim);
	t0 := clock_timestamp();
	LOOP
		PERFORM pg_stat_clear_snapshot();
		EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
							  WHERE pid = victim AND state = 'active'
							  AND query LIKE '%cal_%');
		EXIT WHEN clock_timestamp() - t0 > interval '10 s';
		PERFORM pg_sleep(0.001);
	END LOOP;
	RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000);
END
\$\$;
SQL
}

# standin_force_fails: the stand-in afresh, refusing every force refresh
# (500) until reset, so that a lost pair cannot be recovered quietly.
standin_force_fails() {
	$CAL_STANDIN_CTL reset
	$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
}

# in_flight DB NAME N: session NAME waits in our WaitEventSet and the
# stand-in has seen N refreshes arrive (10 s at most).
in_flight() {
	poll_until "$1" "SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = '$2' AND wait_event_type = 'Extension'" || return 1
	local _
	for _ in $(seq 1 1000); do
		[ "$($CAL_STANDIN_CTL calls refresh)" = "refresh=$3" ] && return 0
		sleep 0.01
	done
	return 1
}

# --- assertions for test/t/*.sh: TAP-like lines the harness counts --------

T_FAILED=0

ok() { printf 'ok - %s\n' "$1"; }

not_ok() {
	printf 'not ok - %s\n' "$1"
	[ $# -gt 1 ] && printf '#   %s\n' "${@:2}"
	T_FAILED=$((T_FAILED + 1))
}

# is ACTUAL EXPECTED DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3" "got:      '$1'" "expected: '$2'"; fi
}

# like ACTUAL REGEX DESCRIPTION
like() {
	if [[ $1 =~ $2 ]]; then ok "$3"; else not_ok "$3" "got: '$1'" "wanted: /$2/"; fi
}

t_done() { exit $((T_FAILED > 0)); }
