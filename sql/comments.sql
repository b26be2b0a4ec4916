-- Every object of the extension explains itself in psql (\dx+, \df+,
-- \dT+, \dt+, \dv+): an object without a comment is listed here.  Every
-- setting has a description in SHOW ALL.  (Without the row and array
-- types PostgreSQL makes along with a table, view or type.)
\set VERBOSITY terse
SELECT pg_describe_object(d.classid, d.objid, 0) AS without_comment
FROM pg_depend d
LEFT JOIN pg_type t ON d.classid = 'pg_type'::regclass AND t.oid = d.objid
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cal_refresh')
  AND (t.oid IS NULL OR (t.typcategory <> 'A' AND coalesce(c.relkind, 'c') = 'c'))
  AND obj_description(d.objid, d.classid::regclass::text) IS NULL
ORDER BY 1;

SELECT count(*) > 15 AS objects_commented
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cal_refresh')
  AND obj_description(d.objid, d.classid::regclass::text) IS NOT NULL;

-- The extension itself (\dx) is described by its control file.
SELECT obj_description(oid, 'pg_extension') FROM pg_extension
WHERE extname = 'cal_refresh';

-- Settings: each has a description; SHOW ALL shows it.
SELECT name FROM pg_settings
WHERE name LIKE 'cal_refresh.%' AND coalesce(short_desc, '') = ''
ORDER BY 1;
SELECT count(*) AS settings_described FROM pg_settings
WHERE name LIKE 'cal_refresh.%' AND short_desc <> '';
