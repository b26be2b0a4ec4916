-- The extension installs into a fresh database of the throwaway cluster.
CREATE EXTENSION cal_refresh;
SELECT extname, extversion FROM pg_extension WHERE extname = 'cal_refresh';
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL calls
