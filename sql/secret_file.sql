-- The secret key file: permission rules, missing and empty files, and
-- rotation by replacing the file, with no reload.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
\! cp -p "$CAL_SECRET_FILE" "$CAL_SECRET_FILE.orig"

SELECT seed_row('01SECRET', 201, 'rt-seed-201');
\! $CAL_STANDIN_CTL seed 201 rt-seed-201

-- Group or world access to a file the server owns is refused before any
-- HTTP call; so is group write.
\! chmod 0640 "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! chmod 0604 "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! chmod 0600 "$CAL_SECRET_FILE"

-- Missing file, a directory, an empty file: config_missing.
\! mv "$CAL_SECRET_FILE" "$CAL_SECRET_FILE.away"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! mkdir -m 0700 "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! rmdir "$CAL_SECRET_FILE"
\! : > "$CAL_SECRET_FILE" && chmod 0600 "$CAL_SECRET_FILE" && chown "$CAL_PG_OS_USER" "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! printf 'two words\n' > "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;

-- None of that reached Cal.com.
\! $CAL_STANDIN_CTL calls

-- Rotation: a replaced file is read again at the next call.  A wrong
-- secret gets Cal.com's 401, which does not fall back to force refresh.
\! printf 'not-the-secret\n' > "$CAL_SECRET_FILE.new" && chmod 0600 "$CAL_SECRET_FILE.new" && chown "$CAL_PG_OS_USER" "$CAL_SECRET_FILE.new" && mv "$CAL_SECRET_FILE.new" "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
\! $CAL_STANDIN_CTL calls

-- Back to the right secret, through a symlink swap.  (Run as root, the
-- target is made root:postgres 0640, the other layout the rule accepts.)
\! if [ "$(id -u)" = 0 ]; then chown "root:$CAL_PG_OS_USER" "$CAL_SECRET_FILE.away" && chmod 0640 "$CAL_SECRET_FILE.away"; fi
\! ln -s "$CAL_SECRET_FILE.away" "$CAL_SECRET_FILE.link" && mv -T "$CAL_SECRET_FILE.link" "$CAL_SECRET_FILE"
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01SECRET') r;
SELECT (row_state('01SECRET')).*;

-- Restore the plain file for the tests that follow.
\! cp -p "$CAL_SECRET_FILE.orig" "$CAL_SECRET_FILE.new" && mv -T "$CAL_SECRET_FILE.new" "$CAL_SECRET_FILE" && rm -f "$CAL_SECRET_FILE.orig" "$CAL_SECRET_FILE.away"
\! $CAL_STANDIN_CTL calls
