/*-------------------------------------------------------------------------
 *
 * check.c
 *		cal_refresh_check(): what a DBA runs first.  One row per check, in
 *		a fixed order: the preload, the settings, the secret file, Cal.com
 *		itself, the application's table and its rows, a role's
 *		privileges (check_table.c), the request budget and the pg_cron job.
 *
 * Nothing it finds raises: each problem is a row with ok = false, what was
 * found in detail and the fix in hint.  ok is NULL when a check could not
 * be made (what it depends on failed, or it does not apply).  The lower
 * layers do the checking (secret_file, app_table, token_store,
 * calcom_client), each through the same code its callers run, so this
 * file only asks and words the answers.  No detail ever shows the secret
 * or a token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pwd.h>
#include <unistd.h>

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "cal_refresh.h"
#include "calcom_client.h"
#include "check_report.h"
#include "check_table.h"
#include "compat.h"
#include "journal.h"
#include "secret_file.h"
#include "spi_pinned.h"
#include "token_store.h"
#include "app_table.h"

/*
 * Cal.com's own limits: 500 requests a minute per OAuth client for the
 * managed-user routes, 120 per client IP for the OAuth2 token endpoint.
 */
#define CAL_CALCOM_LIMIT_PER_MINUTE(flow) \
	((flow) == CAL_FLOW_OAUTH2 ? 120 : 500)

/* Stands for a refresh token in the OAuth2 credentials check: never one. */
#define CHECK_NOT_A_TOKEN "cal-refresh-check-not-a-token"

PG_FUNCTION_INFO_V1(cal_refresh_check);

/*
 * Only a library loaded at server start protects api_url and table_name
 * from a session's first statement; loaded later, every call refuses.
 */
static void
check_preload(CheckState *cs)
{
	const char *current;
	char	   *hint;

	if (cs->settings.preloaded)
	{
		check_emit(cs, "shared_preload_libraries", CHECK_PASSED,
				   "cal_refresh was loaded at server start", NULL);
		return;
	}

	/*
	 * The setting is for superusers and pg_read_all_settings only: others get
	 * advice without its value (and no error).  The libraries listed already
	 * stay in the statement.
	 */
	if (has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS))
	{
		current = GetConfigOption("shared_preload_libraries", true, false);
		hint = psprintf("ALTER SYSTEM SET shared_preload_libraries = %s; then "
						"restart the server.",
						quote_literal_cstr((current == NULL || current[0] == '\0') ?
										   "cal_refresh" :
										   psprintf("%s,cal_refresh", current)));
	}
	else
		hint = "Add cal_refresh to shared_preload_libraries, keeping the "
			"libraries listed there; then restart the server.";
	check_emit(cs, "shared_preload_libraries", CHECK_FAILED,
			   "cal_refresh was loaded by this session, not at server start: "
			   "every call fails with config_insecure", hint);
	cs->calcom_blocked = "cal_refresh is not in shared_preload_libraries";
}

static void
check_client_id(CheckState *cs)
{
	const char *client_id = cs->settings.client_id;

	if (client_id[0] != '\0' && calcom_client_id_is_valid(client_id))
	{
		check_emit(cs, "client_id", CHECK_PASSED, client_id, NULL);
		return;
	}
	check_emit(cs, "client_id", CHECK_FAILED,
			   client_id[0] == '\0' ? "cal_refresh.client_id is not set" :
			   "cal_refresh.client_id holds characters no client id has",
			   "ALTER SYSTEM SET cal_refresh.client_id = '<the OAuth client "
			   "id from Cal.com>'; SELECT pg_reload_conf();");
	if (cs->calcom_blocked == NULL)
		cs->calcom_blocked = "cal_refresh.client_id is not usable";
}

/* The command that fixes a secret file, for each way it can be wrong. */
static char *
check_secret_hint(CheckState *cs, SecretFileProblem why, const char *path)
{
	const char *file = quote_literal_cstr(path);
	const char *user = cs->os_user;

	switch (why)
	{
		case SECRET_FILE_FINE:
			return NULL;
		case SECRET_FILE_UNSET:
			return pstrdup("Set cal_refresh.secret_key_file in postgresql.conf "
						   "to a file holding the OAuth client secret, then "
						   "SELECT pg_reload_conf();");
		case SECRET_FILE_ABSENT:
		case SECRET_FILE_NOT_REGULAR:
			return psprintf("Create it as a regular file: install -m 600 -o %s "
							"/dev/null %s, then write the OAuth client secret "
							"into it on one line.", user, file);
		case SECRET_FILE_TOO_OPEN:
		case SECRET_FILE_CHANGED:
			return psprintf("chmod 0600 %s", file);
		case SECRET_FILE_ROOT_TOO_OPEN:
			return psprintf("chmod 0640 %s (root-owned: the group may read, "
							"nobody else)", file);
		case SECRET_FILE_WRONG_OWNER:
			return psprintf("chown %s %s && chmod 0600 %s", user, file, file);
		case SECRET_FILE_UNREADABLE:
			return psprintf("Let the server's OS user %s read it: chmod 0600 "
							"%s when it owns the file, or chgrp %s and chmod "
							"0640 when root does.", user, file, user);
		case SECRET_FILE_NOT_ONE_LINE:
			return psprintf("Write the OAuth client secret on one line and "
							"nothing else: printf '%%s\\n' \"$SECRET\" > %s",
							file);
	}
	return NULL;
}

/* Set, present, a regular file, permissions, one printable line. */
static void
check_secret_file(CheckState *cs)
{
	const char *path = cs->settings.secret_key_file;
	char	   *problem;
	SecretFileProblem why = secret_file_check(path, &problem);

	if (why == SECRET_FILE_UNSET && cs->settings.flow == CAL_FLOW_OAUTH2)
	{
		check_emit(cs, "secret_key_file", CHECK_PASSED,
				   "not set: a public OAuth2 client, which sends no "
				   "client_secret", NULL);
		return;
	}
	if (why == SECRET_FILE_FINE)
	{
		check_emit(cs, "secret_key_file", CHECK_PASSED,
				   psprintf("\"%s\": one line, readable by the server alone",
							path),
				   NULL);
		return;
	}
	check_emit(cs, "secret_key_file", CHECK_FAILED, problem,
			   check_secret_hint(cs, why, path));
	if (cs->calcom_blocked == NULL)
		cs->calcom_blocked = "the secret key file is not usable";
}

static void
check_api_url(CheckState *cs)
{
	const char *url = cs->settings.api_url;
	const char *why;

	if (!calcom_url_is_acceptable(url, &why))
	{
		check_emit(cs, "api_url", CHECK_FAILED,
				   psprintf("\"%s\": %s", url, why),
				   "ALTER SYSTEM SET cal_refresh.api_url = "
				   "'https://api.cal.com'; SELECT pg_reload_conf();");
		if (cs->calcom_blocked == NULL)
			cs->calcom_blocked = "cal_refresh.api_url is not acceptable";
		return;
	}
	check_emit(cs, "api_url", CHECK_PASSED,
			   calcom_url_is_loopback(url) && pg_strncasecmp(url, "https:", 6) != 0 ?
			   psprintf("%s (plain http, to a loopback host)", url) :
			   psprintf("%s", url),
			   NULL);
}

/* The hint for a connection that failed. */
static const char *
check_connection_hint(const CalCallResult *result, bool https)
{
	if (result->outcome == CAL_TIMEOUT)
		return "Nothing answered in time: check the route from this server "
			"to the host (DNS, firewall), or raise cal_refresh.connect_timeout.";
	if (https)
		return "Check that this server reaches the host (DNS, firewall, no "
			"proxy in its environment that blocks it); for a Cal.com behind a "
			"private CA, set cal_refresh.ca_file to its CA bundle.";
	return "Check that the stand-in or proxy at cal_refresh.api_url is "
		"running and listening.";
}

/* The hint for an answer that did not accept the credentials. */
static const char *
check_credentials_hint(const CalCallResult *result)
{
	long		status = result->http_status;

	if (status == 401 || status == 403)
		return "Cal.com refused the credentials: compare cal_refresh.client_id "
			"and the secret in the file cal_refresh.secret_key_file names with "
			"the OAuth client in Cal.com's platform settings, then replace the "
			"file (no reload needed).";
	if (status == 404)
		return "Cal.com knows no such OAuth client or path: check "
			"cal_refresh.client_id, and that cal_refresh.api_url is the API's "
			"base URL (https://api.cal.com), without /v2.";
	if (status == 429)
		return "Cal.com is throttling this client: wait a minute, and keep "
			"cal_refresh.max_requests_per_minute at the flow's default "
			"(ALTER SYSTEM RESET cal_refresh.max_requests_per_minute).";
	if (result->outcome == CAL_UNAVAILABLE || result->outcome == CAL_TIMEOUT)
		return "Cal.com (or a proxy before it) is failing or slow: try again "
			"later; cal_refresh.timeout bounds each call.";
	return "The answer is not Cal.com's API: check that cal_refresh.api_url "
		"is the API's base URL (https://api.cal.com), not a web page or a "
		"redirecting address.";
}

/* What the OAuth2 token endpoint said of a refresh token that is none. */
static void
check_oauth2_credentials(CheckState *cs, const CalCallResult *result)
{
	if (result->http_status == 400 &&
		strstr(result->message, "invalid_grant") != NULL)
		check_emit(cs, "calcom_credentials", CHECK_PASSED,
				   "POST /v2/auth/oauth2/token with a refresh token that is "
				   "none: invalid_grant, so Cal.com accepts the client id"
				   " and secret", NULL);
	else
		check_emit(cs, "calcom_credentials", CHECK_FAILED,
				   psprintf("POST /v2/auth/oauth2/token: %s", result->message),
				   check_credentials_hint(result));
}

/*
 * Sends check_calcom's one request, into *result.  The OAuth2 token
 * endpoint checks the client before the token: a refresh token that is
 * none earns invalid_grant with good credentials, invalid_client with bad
 * ones, and spends nothing.
 */
static void
check_calcom_ask(const CalClientConfig *client, bool oauth2,
				 CalCallResult *result)
{
	CalBatch   *batch = calcom_batch_create(client, 1, CAL_BATCH_INTERACTIVE,
											 CAL_BATCH_NO_START_LIMIT);
	void	   *tag;

	if (oauth2)
		calcom_batch_add_refresh(batch, CHECK_NOT_A_TOKEN, NULL);
	else
		calcom_batch_add_list_users(batch, NULL);
	*result = *calcom_batch_next(batch, &tag);
	calcom_batch_end(batch);
	ereport(DEBUG1,
			(errmsg_internal("cal_refresh: check: %s HTTP %ld in %d ms",
							 calcom_endpoint_name(result->endpoint),
							 result->http_status, result->elapsed_ms)));
}

/* check_calcom's two rows, from what its request found. */
static void
check_calcom_rows(CheckState *cs, const CalClientConfig *client, bool oauth2,
				  const CalCallResult *result)
{
	bool		https = pg_strncasecmp(client->api_url, "https:", 6) == 0;
	bool		connected = result->http_status > 0 || result->request_sent;

	if (result->attempts == 0)
	{
		/* Nothing was sent: the budget, or a pause after a 429, held it. */
		const char *hint = "The cluster's request budget had no slot in time "
			"(after a 429 every session pauses for up to a minute): try again "
			"in a minute.";

		check_emit(cs, "calcom_connection", CHECK_NOT_MADE,
				   psprintf("not checked: %s", result->message), hint);
		check_emit(cs, "calcom_credentials", CHECK_NOT_MADE,
				   psprintf("not checked: %s", result->message), hint);
		return;
	}
	if (!connected)
		check_emit(cs, "calcom_connection", CHECK_FAILED,
				   psprintf("no connection to %s: %s", client->api_url,
							result->message),
				   check_connection_hint(result, https));
	else
		check_emit(cs, "calcom_connection", CHECK_PASSED,
				   psprintf(https ? "%s answered over TLS (certificate "
							"verified)" : "%s answered (plain http)",
							client->api_url),
				   NULL);
	if (!connected)
		check_skip(cs, "calcom_credentials", "no connection to Cal.com");
	else if (oauth2)
		check_oauth2_credentials(cs, result);
	else if (result->outcome == CAL_OK)
		check_emit(cs, "calcom_credentials", CHECK_PASSED,
				   "GET /v2/oauth-clients/{clientId}/users?limit=1 succeeded: "
				   "Cal.com accepts the client id and secret", NULL);
	else
		check_emit(cs, "calcom_credentials", CHECK_FAILED,
				   psprintf("GET /v2/oauth-clients/{clientId}/users?limit=1: %s",
							result->message),
				   check_credentials_hint(result));
}

/*
 * Connects to Cal.com (TLS verified) and sends one cheap, read-only,
 * authenticated request that only succeeds with a valid client id and
 * secret: the first managed user of the client.  One attempt, no retry:
 * the rows say what happened.  It takes a slot of the request budget like
 * any call.
 */
static void
check_calcom(CheckState *cs)
{
	const char *secret;
	char	   *problem;
	CalClientConfig client;
	CalCallResult result;
	bool		oauth2 = cs->settings.flow == CAL_FLOW_OAUTH2;

	if (oauth2 && cs->settings.secret_key_file[0] == '\0')
		secret = "";			/* a public client */
	else if (cs->calcom_blocked == NULL &&
			 secret_file_get(cs->settings.secret_key_file, &secret, &problem) !=
			 SECRET_FILE_OK)
		cs->calcom_blocked = "the secret key file is not usable";
	if (cs->calcom_blocked != NULL)
	{
		check_skip(cs, "calcom_connection", cs->calcom_blocked);
		check_skip(cs, "calcom_credentials", cs->calcom_blocked);
		return;
	}
	settings_client_config(&cs->settings, secret, &client);
	client.max_retries = 0;
	client.cancel_grace_ms = 0;	/* nothing to journal */
	check_calcom_ask(&client, oauth2, &result);
	check_calcom_rows(cs, &client, oauth2, &result);
	explicit_bzero(&result, sizeof(result));
}

/* The cluster's request budget against Cal.com's limit per client. */
static void
check_budget(CheckState *cs)
{
	int			per_minute = cs->settings.max_requests_per_minute;
	int			limit = CAL_CALCOM_LIMIT_PER_MINUTE(cs->settings.flow);
	const char *per = cs->settings.flow == CAL_FLOW_OAUTH2 ?
		"per client IP at the OAuth2 token endpoint" : "per OAuth client";
	bool		fits = per_minute > 0 && per_minute <= limit;

	check_emit(cs, "max_requests_per_minute",
			   fits ? CHECK_PASSED : CHECK_FAILED,
			   per_minute == 0 ?
			   psprintf("0: unlimited; Cal.com allows %d a minute %s, then "
						"answers 429 and blocks for 60 s", limit, per) :
			   psprintf("%d a minute for the whole cluster; Cal.com allows %d "
						"%s", per_minute, limit, per),
			   "Use the flow's default: ALTER SYSTEM RESET "
			   "cal_refresh.max_requests_per_minute; SELECT pg_reload_conf();");
}

/*
 * Why the pg_cron job cannot be looked for (pg_cron absent here, cron.job
 * unreadable or of an unknown shape), or NULL.
 */
static const char *
check_cron_unavailable(Oid *relid)
{
	Oid			nspid = get_namespace_oid("cron", true);
	static const struct
	{
		const char *name;
		Oid			type;
	}			columns[] = {
		{"command", TEXTOID}, {"database", TEXTOID}, {"active", BOOLOID},
		{"schedule", TEXTOID}
	};
	size_t		i;

	*relid = OidIsValid(nspid) ? get_relname_relid("job", nspid) : InvalidOid;
	if (!OidIsValid(*relid))
		return "pg_cron is not installed in this database";

	/*
	 * Any role that may create a schema could have made this "cron.job": a
	 * plain table with built-in column types runs none of its code when
	 * read (see check_pg_cron for the rest).
	 */
	if (get_rel_relkind(*relid) != RELKIND_RELATION)
		return "cron.job is not a table";
	/* Nor read one that is not pg_cron's: it could carry a policy. */
	if (!OidIsValid(get_extension_oid("pg_cron", true)) ||
		getExtensionOfObject(RelationRelationId, *relid) !=
		get_extension_oid("pg_cron", true))
		return "cron.job is not pg_cron's own table: not read";
	for (i = 0; i < lengthof(columns); i++)
	{
		AttrNumber	attnum = get_attnum(*relid, columns[i].name);

		if (attnum == InvalidAttrNumber ||
			get_atttype(*relid, attnum) != columns[i].type)
			return "cron.job lacks the columns of pg_cron 1.4";
	}
	if (cal_namespace_aclcheck(nspid, GetUserId(), ACL_USAGE) != ACLCHECK_OK ||
		pg_class_aclcheck(*relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return "cron.job is not readable by this role";
	return NULL;
}

/* check_pg_cron's count, run in a subtransaction. */
typedef struct CronCount
{
	MemoryContext context;
	int64		active;
	char	   *schedules;
} CronCount;

static void
check_cron_count(void *arg)
{
	CronCount  *count = (CronCount *) arg;
	bool		isnull;
	Datum		value;

	if (SPI_execute("SELECT count(*), string_agg(DISTINCT schedule, ', ' "
					"ORDER BY schedule) FROM cron.job WHERE active "
					"AND database = current_database() "
					"AND command ~* 'cal_refresh_expiring_tokens'",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute failed on cron.job");
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
						  &isnull);
	count->active = isnull ? 0 : DatumGetInt64(value);
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
						  &isnull);
	if (!isnull)
		count->schedules = MemoryContextStrdup(count->context,
											   TextDatumGetCString(value));
}

/* Is a pg_cron job of this database calling the scheduled refresh? */
static void
check_pg_cron(CheckState *cs)
{
	Oid			relid;
	const char *unavailable = check_cron_unavailable(&relid);
	const char *schedule_hint =
		"SELECT cron.schedule('cal-refresh', '*/5 * * * *', "
		"'CALL cal_refresh_expiring_tokens_job()');";
	CronCount	count = {CurrentMemoryContext, 0, NULL};
	SpiPinned	session;
	ErrorData  *error;

	if (unavailable != NULL)
	{
		check_emit(cs, "pg_cron job", CHECK_NOT_MADE, unavailable,
				   "Run CALL cal_refresh_expiring_tokens_job() every few "
				   "minutes: with pg_cron, cron.schedule_in_database() from "
				   "its database, or any other scheduler.");
		return;
	}

	/*
	 * As the application's table is read: a superuser reads a table owned
	 * by a lesser role as that role, security-restricted.  What the table
	 * raises (a policy, say) is reported, never raised; a cancel is.
	 */
	spi_pinned_begin(&session, InvalidOid);
	spi_pinned_run_as_reader(&session, spi_pinned_rel_owner(relid));
	error = spi_pinned_in_subtransaction(check_cron_count, &count, false,
										 CurrentMemoryContext);
	spi_pinned_end(&session);
	if (error != NULL)
	{
		if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(error);
		check_emit(cs, "pg_cron job", CHECK_NOT_MADE,
				   psprintf("cron.job could not be read: %s", error->message),
				   NULL);
		return;
	}
	if (count.active > 0)
		check_emit(cs, "pg_cron job", CHECK_PASSED,
				   psprintf("active jobs of this database calling "
							"cal_refresh_expiring_tokens: " INT64_FORMAT
							" (schedule %s)", count.active, count.schedules),
				   NULL);
	else
		check_emit(cs, "pg_cron job", CHECK_FAILED,
				   "no active job in cron.job calls cal_refresh_expiring_tokens "
				   "in this database", schedule_hint);
}

/*
 * Can the journal take the pairs Cal.com issues in this database: its
 * table, a writer that starts and connects, nothing waiting too long?
 */
static void
check_journal(CheckState *cs)
{
	char	   *detail;
	char	   *hint;

	if (!cs->settings.preloaded)
	{
		check_emit(cs, "journal", CHECK_NOT_MADE,
				   "the library is not preloaded", NULL);
		return;
	}
	if (journal_check(cs->extension_schema, &detail, &hint))
		check_emit(cs, "journal", CHECK_PASSED, detail, NULL);
	else
		check_emit(cs, "journal", CHECK_FAILED, detail, hint);
}

/* The name of the server's OS user, for chown hints. */
static const char *
check_os_user(void)
{
	struct passwd *pw = getpwuid(geteuid());

	return pw != NULL ? pstrdup(pw->pw_name) : psprintf("%d", (int) geteuid());
}

/*
 * cal_refresh_check(role name default current_user) returns table (check,
 * ok, detail, hint): one row per check, in a fixed order; the privilege
 * checks are those of role.  Raises for nothing it finds.
 */
Datum
cal_refresh_check(PG_FUNCTION_ARGS)
{
	CheckState	cs;
	MemoryContext work_context;
	MemoryContext caller_context;

	memset(&cs, 0, sizeof(cs));
	InitMaterializedSRF(fcinfo, 0);
	cs.store = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	cs.desc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;
	cs.extension_schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	work_context = AllocSetContextCreate(CurrentMemoryContext,
										 "cal_refresh check",
										 ALLOCSET_DEFAULT_SIZES);
	caller_context = MemoryContextSwitchTo(work_context);
	cs.role = PG_ARGISNULL(0) ? GetUserId() :
		get_role_oid(NameStr(*PG_GETARG_NAME(0)), true);
	cs.role_name = PG_ARGISNULL(0) ? GetUserNameFromId(GetUserId(), false) :
		pstrdup(NameStr(*PG_GETARG_NAME(0)));
	cs.os_user = check_os_user();
	settings_snapshot(&cs.settings);

	check_preload(&cs);
	check_client_id(&cs);
	check_secret_file(&cs);
	check_api_url(&cs);
	check_calcom(&cs);
	check_table_all(&cs);
	check_privileges(&cs);
	check_budget(&cs);
	check_journal(&cs);
	check_pg_cron(&cs);

	MemoryContextSwitchTo(caller_context);
	MemoryContextDelete(work_context);
	return (Datum) 0;
}
