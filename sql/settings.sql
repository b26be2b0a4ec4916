-- Settings: defaults, units, check hooks, and who may change what.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Defaults that do not depend on the test cluster.
SHOW cal_refresh.table_name;
SHOW cal_refresh.timeout;
SHOW cal_refresh.connect_timeout;
SHOW cal_refresh.ca_file;

-- Durations take units.
SET cal_refresh.timeout = '2s';
SHOW cal_refresh.timeout;
-- Below the minimum: 22023 (the message's wording changed in PostgreSQL 17).
\set VERBOSITY sqlstate
SET cal_refresh.timeout = 50;
\set VERBOSITY default
RESET cal_refresh.timeout;

-- A misspelt setting is an error, not a silent placeholder.
SET cal_refresh.timout = '1s';

-- api_url: https, or http only to loopback; nothing that hides a host.
SET cal_refresh.api_url = 'http://api.cal.com';
SET cal_refresh.api_url = 'ftp://127.0.0.1';
SET cal_refresh.api_url = 'https://user:pw@api.cal.com';
SET cal_refresh.api_url = 'https://api.cal.com/?x=1';
SET cal_refresh.api_url = 'http://127.0.0.1.evil.example';
SET cal_refresh.api_url = 'https://api.cal.com';
SET cal_refresh.api_url = 'http://localhost:9';
SET cal_refresh.api_url = 'http://[::1]:9';
RESET cal_refresh.api_url;

-- table_name: exactly schema.table.
SET cal_refresh.table_name = '"CalendarIntegration"';
SET cal_refresh.table_name = 'public."CalendarIntegration"; DROP TABLE x';
SET cal_refresh.table_name = 'a.b.c';
SET cal_refresh.table_name = 'public."Calendar""Quoted"';
SHOW cal_refresh.table_name;
SET cal_refresh.table_name = 'Public.CalendarIntegration';
SHOW cal_refresh.table_name;
RESET cal_refresh.table_name;

-- client_id lands in a URL path: no path characters.
SET cal_refresh.client_id = '../other';
SET cal_refresh.client_id = 'a%2Fb';

-- An unprivileged role may tune timeouts but never choose where the
-- secret goes, which table is used, or where the secret is read from.
SET ROLE cal_app;
SET cal_refresh.timeout = '3s';
SET cal_refresh.connect_timeout = '1s';
SET cal_refresh.api_url = 'http://127.0.0.1:9';
SET cal_refresh.table_name = 'public.evil';
SET cal_refresh.client_id = 'other';
SET cal_refresh.ca_file = '/tmp/evil.pem';
SET cal_refresh.secret_key_file = '/tmp/other';
RESET ROLE;

-- Even a superuser cannot SET the secret file per session: server-wide only.
SET cal_refresh.secret_key_file = '/tmp/other';

-- No setting holds the secret.
SELECT name FROM pg_settings WHERE name LIKE 'cal_refresh.%' ORDER BY name;
