/*-------------------------------------------------------------------------
 *
 * calcom_client.c
 *		Cal.com's refresh and force-refresh calls over libcurl.
 *
 * Each attempt runs on the backend's multi handle through curl_wait.c,
 * so a cancel, statement_timeout or pg_terminate_backend interrupts it at
 * once, which a blocking curl_easy_perform cannot do.  Here: the request
 * (headers, body, options), retries within cal_refresh.timeout, and the
 * classification of what came back.
 *
 * One easy handle lives for the whole backend (in libcurl's own memory,
 * outside any transaction); connections stay in the multi handle, kept
 * alive between calls.  If an error escapes mid-call the handle is
 * detached (closing that connection) and the wait set is freed before the
 * error propagates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <time.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"

#include "calcom_client.h"
#include "compat.h"
#include "curl_wait.h"
#include "rate_limit.h"

/* One request/response exchange; lives in the caller's memory context. */
typedef struct CalTransfer
{
	struct curl_slist *headers;
	const char *request_body;
	size_t		request_len;
	size_t		request_offset; /* how much the read callback handed out */
	int			retry_after_ms; /* from a Retry-After header, or -1 */
	int			ratelimit_remaining;	/* X-RateLimit-Remaining-Default, or -1 */
	const char *refresh_token;	/* the one sent, if any: never echoed back */
	size_t		body_len;
	bool		body_over_cap;
	char		curl_error[CURL_ERROR_SIZE];
	char		body[CAL_BODY_MAX + 1];
} CalTransfer;

/* First retry waits about this long; each further one twice as long. */
#define CAL_RETRY_BASE_MS 250

/* A Retry-After beyond this is treated as this (it is capped by the
 * attempt's deadline anyway). */
#define CAL_RETRY_AFTER_MAX_MS (3600 * 1000)

/* One easy handle for the backend; connections live in the multi handle. */
static CURL *cal_easy = NULL;

static size_t
calcom_client_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	CalTransfer *transfer = (CalTransfer *) userp;
	size_t		n = size * nmemb;

	/* Stop at the cap ourselves: a body of unknown length has no limit. */
	if (n > CAL_BODY_MAX - transfer->body_len)
	{
		transfer->body_over_cap = true;
		return 0;
	}
	memcpy(transfer->body + transfer->body_len, data, n);
	transfer->body_len += n;
	return n;
}

/*
 * Hands curl the request body.  Deliberately no seek callback: when a
 * kept-alive connection dies after the body went out, libcurl would
 * silently re-send the request on a new connection, spending a refresh
 * token twice.  Without a way to rewind, it fails the transfer instead
 * (CURLE_SEND_FAIL_REWIND), and the fallback rules decide.
 */
static size_t
calcom_client_read_cb(char *buffer, size_t size, size_t nitems, void *userp)
{
	CalTransfer *transfer = (CalTransfer *) userp;
	size_t		n = Min(size * nitems,
						transfer->request_len - transfer->request_offset);

	memcpy(buffer, transfer->request_body + transfer->request_offset, n);
	transfer->request_offset += n;
	return n;
}

/*
 * If the header line data (n bytes) is "name: value", copies the value,
 * trimmed, into value (value_size bytes) and returns true.
 */
static bool
calcom_client_header_value(const char *data, size_t n, const char *name,
						   char *value, size_t value_size)
{
	size_t		name_len = strlen(name);
	size_t		len;

	if (n <= name_len || pg_strncasecmp(data, name, name_len) != 0)
		return false;
	len = Min(n - name_len, value_size - 1);
	memcpy(value, data + name_len, len);
	while (len > 0 && isspace((unsigned char) value[len - 1]))
		len--;
	value[len] = '\0';
	return true;
}

/*
 * Picks Retry-After (seconds or an HTTP date) and Cal.com's remaining
 * request count out of the response headers.
 */
static size_t
calcom_client_header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	CalTransfer *transfer = (CalTransfer *) userp;
	size_t		n = size * nitems;
	char		value[64];
	char	   *end;
	long		number;

	if (calcom_client_header_value(data, n, "retry-after:", value,
								   sizeof(value)))
	{
		number = strtol(value, &end, 10);
		if (end != value && number >= 0 && *end == '\0')
			transfer->retry_after_ms = (int) Min((int64) number * 1000,
												 CAL_RETRY_AFTER_MAX_MS);
		else
		{
			time_t		when = curl_getdate(value, NULL);

			if (when > 0)
				transfer->retry_after_ms = (int)
					Min(Max((int64) (when - time(NULL)) * 1000, 0),
						CAL_RETRY_AFTER_MAX_MS);
		}
	}
	else if (calcom_client_header_value(data, n,
										"x-ratelimit-remaining-default:",
										value, sizeof(value)))
	{
		number = strtol(value, &end, 10);
		if (end != value && number >= 0 && *end == '\0')
			transfer->ratelimit_remaining = (int) Min(number, INT_MAX);
	}
	return n;
}

void
calcom_client_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
}

static void
calcom_client_ensure_handle(void)
{
	if (cal_easy == NULL)
	{
		cal_easy = curl_easy_init();
		if (cal_easy == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("curl_easy_init() failed.")));
	}
}

/* Appends a header line; false when libcurl is out of memory. */
static bool
calcom_client_append_header(CalTransfer *transfer, const char *line)
{
	struct curl_slist *grown = curl_slist_append(transfer->headers, line);

	if (grown == NULL)
		return false;
	transfer->headers = grown;
	return true;
}

/* Frees what libcurl copied for us, wiping the secret key first. */
static void
calcom_client_free_headers(CalTransfer *transfer)
{
	struct curl_slist *item;

	for (item = transfer->headers; item != NULL; item = item->next)
		explicit_bzero(item->data, strlen(item->data));
	curl_slist_free_all(transfer->headers);
	transfer->headers = NULL;
}

static void
calcom_client_build_headers(const CalClientConfig *config,
							CalTransfer *transfer)
{
	size_t		line_len = strlen(config->secret_key) + 32;
	char	   *secret_line = palloc(line_len);
	bool		ok;

	snprintf(secret_line, line_len, "x-cal-secret-key: %s", config->secret_key);
	ok = calcom_client_append_header(transfer, "Content-Type: application/json") &&
		calcom_client_append_header(transfer, "Accept: application/json") &&
	/* No "100-continue" round trip for a body of a few bytes. */
		calcom_client_append_header(transfer, "Expect:") &&
		calcom_client_append_header(transfer,
									psprintf("x-cal-client-id: %s",
											 config->client_id)) &&
		calcom_client_append_header(transfer, secret_line);
	explicit_bzero(secret_line, line_len);
	pfree(secret_line);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
}

static void
calcom_client_set_options(const CalClientConfig *config, const char *url,
						  int budget_ms, CalTransfer *transfer)
{
	CURL	   *easy = cal_easy;

	/* Start from defaults every call; live connections survive a reset. */
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) transfer->request_len);
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, calcom_client_read_cb);
	curl_easy_setopt(easy, CURLOPT_READDATA, transfer);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, calcom_client_header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "cal_refresh/1.0");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, calcom_client_write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->curl_error);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) budget_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
					 (long) Min(config->connect_timeout_ms, budget_ms));
	/* The secret goes to the configured host and nowhere else. */
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
#ifdef CAL_HAVE_CURLOPT_PROTOCOLS_STR
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (config->ca_file != NULL && config->ca_file[0] != '\0')
		curl_easy_setopt(easy, CURLOPT_CAINFO, config->ca_file);
	/* A proxy from the server's environment must not see loopback calls. */
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
#ifdef CAL_HAVE_CURLOPT_QUICK_EXIT
	curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
#endif
}

/*
 * Which phase a timed-out transfer was in, from curl's own timings.  A
 * reused connection has no DNS, connect or TLS time, so once the request
 * is sent only the response phases are considered.
 */
static const char *
calcom_client_timeout_phase(bool request_sent, bool https)
{
	curl_off_t	namelookup = 0;
	curl_off_t	connect = 0;
	curl_off_t	appconnect = 0;
	long		header_bytes = 0;

	curl_easy_getinfo(cal_easy, CURLINFO_NAMELOOKUP_TIME_T, &namelookup);
	curl_easy_getinfo(cal_easy, CURLINFO_CONNECT_TIME_T, &connect);
	curl_easy_getinfo(cal_easy, CURLINFO_APPCONNECT_TIME_T, &appconnect);
	curl_easy_getinfo(cal_easy, CURLINFO_HEADER_SIZE, &header_bytes);
	if (request_sent)
		return header_bytes == 0 ? "waiting for the response" :
			"reading the response";
	if (namelookup == 0)
		return "resolving the host name";
	if (connect == 0)
		return "connecting";
	if (https && appconnect == 0)
		return "the TLS handshake";
	return "sending the request";
}

/* Does the response body contain needle (a secret) anywhere? */
static bool
calcom_client_body_quotes(const CalTransfer *transfer, const char *needle)
{
	return needle != NULL && needle[0] != '\0' &&
		memmem(transfer->body, transfer->body_len, needle, strlen(needle)) != NULL;
}

/* Turns a finished (or failed) transfer into a CalCallResult. */
static void
calcom_client_classify(const CalClientConfig *config, CURLcode code,
					   CalTransfer *transfer, CalCallResult *result)
{
	long		status = 0;
	long		request_size = 0;
	curl_off_t	total_us = 0;
	char		description[CAL_MESSAGE_MAX];

	curl_easy_getinfo(cal_easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(cal_easy, CURLINFO_REQUEST_SIZE, &request_size);
	curl_easy_getinfo(cal_easy, CURLINFO_TOTAL_TIME_T, &total_us);
	result->http_status = status;
	result->request_sent = request_size > 0;
	result->elapsed_ms = (int) (total_us / 1000);

	result->body_over_cap = transfer->body_over_cap;
	if (code == CURLE_WRITE_ERROR && transfer->body_over_cap)
	{
		/* Too big to read: an error status still says what happened. */
		result->outcome = status >= 400 ?
			(status == 429 || status >= 500 ? CAL_UNAVAILABLE : CAL_REJECTED) :
			CAL_BAD_RESPONSE;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "HTTP %ld: response body larger than %d kB", status,
				 CAL_BODY_MAX / 1024);
	}
	else if (code == CURLE_OPERATION_TIMEDOUT)
	{
		result->outcome = CAL_TIMEOUT;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "timed out after %d ms while %s", result->elapsed_ms,
				 calcom_client_timeout_phase(result->request_sent,
											 strncasecmp(config->api_url,
														 "https:", 6) == 0));
	}
	else if (code == CURLE_SEND_FAIL_REWIND)
	{
		result->outcome = CAL_NETWORK_ERROR;
		result->request_sent = true;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "connection lost after the request was sent; not re-sent");
	}
	else if (code != CURLE_OK)
	{
		result->outcome = CAL_NETWORK_ERROR;
		snprintf(result->message, CAL_MESSAGE_MAX, "%s",
				 transfer->curl_error[0] != '\0' ? transfer->curl_error :
				 curl_easy_strerror(code));
	}
	else if (status >= 200 && status < 300)
	{
		if (calcom_parse_tokens(transfer->body, transfer->body_len,
								&result->tokens, description,
								sizeof(description)))
			result->outcome = CAL_OK;
		else
		{
			result->outcome = CAL_BAD_RESPONSE;
			snprintf(result->message, CAL_MESSAGE_MAX, "HTTP %ld: %s",
					 status, description);
		}
	}
	else if (status >= 300 && status < 400)
	{
		result->outcome = CAL_BAD_RESPONSE;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "HTTP %ld: redirects are not followed", status);
	}
	else
	{
		if (status == 429 || status >= 500)
			result->outcome = CAL_UNAVAILABLE;
		else if (status >= 400)
			result->outcome = CAL_REJECTED;
		else
			result->outcome = CAL_BAD_RESPONSE;
		/* A body that quotes a credential back is not described at all. */
		if (calcom_client_body_quotes(transfer, config->secret_key) ||
			calcom_client_body_quotes(transfer, transfer->refresh_token))
			snprintf(description, sizeof(description),
					 "error description withheld: it quoted a credential");
		else
			calcom_describe_error(transfer->body, transfer->body_len,
								  description, sizeof(description));
		snprintf(result->message, CAL_MESSAGE_MAX, "HTTP %ld: %s",
				 status, description);
	}
	explicit_bzero(description, sizeof(description));
}

/* One attempt: a POST of body to url, within budget_ms. */
static void
calcom_client_attempt(const CalClientConfig *config, const char *url,
					  const char *request_body, const char *refresh_token,
					  int budget_ms, CalCallResult *result)
{
	CalTransfer *transfer = palloc0(sizeof(CalTransfer));
	CURLcode	code = CURLE_FAILED_INIT;

	memset(result, 0, sizeof(*result));
	calcom_client_ensure_handle();
	transfer->request_body = request_body;
	transfer->request_len = strlen(request_body);
	transfer->refresh_token = refresh_token;
	transfer->retry_after_ms = -1;
	transfer->ratelimit_remaining = -1;

	PG_TRY();
	{
		CURLMsg    *msg;
		CURLMcode	mc;
		int			pending;

		calcom_client_build_headers(config, transfer);
		calcom_client_set_options(config, url, budget_ms, transfer);
		mc = curl_multi_add_handle(curl_wait_multi(), cal_easy);
		if (mc == CURLM_OK)
			mc = curl_wait_run();
		if (mc != CURLM_OK)
			snprintf(transfer->curl_error, CURL_ERROR_SIZE, "libcurl: %s",
					 curl_multi_strerror(mc));
		while ((msg = curl_multi_info_read(curl_wait_multi(), &pending)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == cal_easy)
				code = msg->data.result;
		calcom_client_classify(config, code, transfer, result);
		result->retry_after_ms = transfer->retry_after_ms;
		rate_limit_feedback(config->max_requests_per_minute,
							result->http_status == 429,
							transfer->retry_after_ms,
							transfer->ratelimit_remaining);
	}
	PG_FINALLY();
	{
		/* Mid-transfer, this closes the connection: it cannot be reused. */
		curl_multi_remove_handle(curl_wait_multi(), cal_easy);
		curl_wait_reset();
		calcom_client_free_headers(transfer);
		explicit_bzero(transfer->body, sizeof(transfer->body));
		pfree(transfer);
	}
	PG_END_TRY();
}

/*
 * May this failed attempt be repeated?  A refresh only when Cal.com cannot
 * have seen it (nothing sent) or asked us to slow down (429): anything
 * else may have spent the token, and that is the fallback's business.
 * Force refresh yields the same outcome however often it is sent.
 */
static bool
calcom_client_should_retry(CalEndpoint endpoint, const CalCallResult *result)
{
	switch (result->outcome)
	{
		case CAL_UNAVAILABLE:
			return result->http_status == 429 ||
				endpoint == CAL_ENDPOINT_FORCE_REFRESH;
		case CAL_NETWORK_ERROR:
		case CAL_TIMEOUT:
			return !result->request_sent ||
				endpoint == CAL_ENDPOINT_FORCE_REFRESH;
		case CAL_OK:
		case CAL_REJECTED:
		case CAL_BAD_RESPONSE:
			break;
	}
	return false;
}

/* Jittered exponential backoff: base * 2^attempt, times 0.5 to 1.5. */
static int
calcom_client_backoff_ms(int attempt)
{
	double		base = (double) CAL_RETRY_BASE_MS * (1 << Min(attempt, 10));

	return (int) (base * (0.5 + cal_random_fraction()));
}

/* Sleeps ms milliseconds, waking at once for a cancel or a timeout. */
static void
calcom_client_sleep(int ms)
{
	int64		until = curl_wait_now_ms() + ms;
	int64		left;

	while ((left = until - curl_wait_now_ms()) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The least time worth starting an attempt with. */
static int
calcom_client_min_attempt_ms(const CalClientConfig *config)
{
	return Min(config->connect_timeout_ms, config->timeout_ms / 2);
}

/*
 * The result when the cluster's request budget has no slot before the
 * endpoint's deadline.  After a failed attempt, that attempt's outcome
 * stands, with a note; before any, it is a timeout with nothing sent.
 */
static void
calcom_client_no_slot(const CalClientConfig *config, int attempt,
					  CalCallResult *result)
{
	size_t		used;

	if (attempt == 0)
	{
		memset(result, 0, sizeof(*result));
		result->outcome = CAL_TIMEOUT;
		result->retry_after_ms = -1;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "no request slot within cal_refresh.timeout "
				 "(cal_refresh.max_requests_per_minute = %d)",
				 config->max_requests_per_minute);
		return;
	}
	used = strlen(result->message);
	snprintf(result->message + used, CAL_MESSAGE_MAX - used,
			 " (no retry: no request slot within cal_refresh.timeout)");
}

/*
 * One endpoint's call: attempts and retries, all within config->timeout_ms
 * (no retry starts that could not finish in time).  Wipes request_body.
 */
static void
calcom_client_post(const CalClientConfig *config, CalEndpoint endpoint,
				   const char *url, char *request_body,
				   const char *refresh_token, CalCallResult *result)
{
	int64		start = curl_wait_now_ms();
	int64		deadline = start + config->timeout_ms;
	int			attempt;

	for (attempt = 0;; attempt++)
	{
		int			delay_ms;
		int64		slot_wait_us;

		/*
		 * Every request takes a slot of the cluster's budget first, one that
		 * leaves time for the attempt: a refresh cut short once sent would
		 * cost a needless force refresh.
		 */
		slot_wait_us = rate_limit_reserve(config->max_requests_per_minute,
										  (deadline - calcom_client_min_attempt_ms(config)) * 1000);
		if (slot_wait_us < 0)
		{
			calcom_client_no_slot(config, attempt, result);
			break;
		}
		if (slot_wait_us > 0)
			calcom_client_sleep((int) ((slot_wait_us + 999) / 1000));

		calcom_client_attempt(config, url, request_body, refresh_token,
							  (int) Max(deadline - curl_wait_now_ms(), 1), result);
		if (result->outcome == CAL_OK || attempt >= config->max_retries ||
			!calcom_client_should_retry(endpoint, result))
			break;
		delay_ms = result->retry_after_ms >= 0 ? result->retry_after_ms :
			calcom_client_backoff_ms(attempt);
		if (curl_wait_now_ms() + delay_ms >= deadline)
		{
			size_t		used = strlen(result->message);

			snprintf(result->message + used, CAL_MESSAGE_MAX - used,
					 " (no retry: waiting %d ms would pass cal_refresh.timeout)",
					 delay_ms);
			break;
		}
		ereport(DEBUG1,
				(errmsg_internal("cal_refresh: %s attempt %d failed (%s); retrying in %d ms",
								 calcom_endpoint_name(endpoint), attempt + 1,
								 result->message, delay_ms)));
		calcom_client_sleep(delay_ms);
	}
	result->attempts = attempt + 1;
	result->elapsed_ms = (int) (curl_wait_now_ms() - start);
	explicit_bzero(request_body, strlen(request_body));
}

static char *
calcom_client_base_url(const CalClientConfig *config)
{
	char	   *base = pstrdup(config->api_url);
	size_t		len = strlen(base);

	while (len > 0 && base[len - 1] == '/')
		base[--len] = '\0';
	return base;
}

void
calcom_client_refresh(const CalClientConfig *config,
					  const char *refresh_token, CalCallResult *result)
{
	StringInfoData body;
	const char *p;
	char	   *url;

	/* The token is printable ASCII (checked by the caller): escape " and \ */
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"refreshToken\":\"");
	for (p = refresh_token; *p != '\0'; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(&body, '\\');
		appendStringInfoChar(&body, *p);
	}
	appendStringInfoString(&body, "\"}");

	url = psprintf("%s/v2/oauth/%s/refresh", calcom_client_base_url(config),
				   config->client_id);
	calcom_client_post(config, CAL_ENDPOINT_REFRESH, url, body.data,
					   refresh_token, result);
}

void
calcom_client_force_refresh(const CalClientConfig *config,
							long managed_user_id, CalCallResult *result)
{
	char	   *url;

	url = psprintf("%s/v2/oauth-clients/%s/users/%ld/force-refresh",
				   calcom_client_base_url(config), config->client_id,
				   managed_user_id);
	calcom_client_post(config, CAL_ENDPOINT_FORCE_REFRESH, url, pstrdup(""),
					   NULL, result);
}

const char *
calcom_endpoint_name(CalEndpoint endpoint)
{
	return endpoint == CAL_ENDPOINT_REFRESH ? "refresh" : "force-refresh";
}
