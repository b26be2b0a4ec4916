/*-------------------------------------------------------------------------
 *
 * calcom_transfer.c
 *		One request/response exchange with Cal.com over a libcurl easy
 *		handle: the request (headers, body, options) and the classification
 *		of what came back.
 *
 * The request body is handed over through a read callback that cannot
 * rewind, the response body is capped in the write callback, and the
 * headers that carried the secret and the bodies that carried tokens are
 * wiped before they are freed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/timestamp.h"

#include "calcom_transfer.h"
#include "compat.h"


struct CalTransfer
{
	const CalEndpointDesc *desc;
	CURL	   *easy;
	struct curl_slist *headers;
	const char *request_body;
	size_t		request_len;
	size_t		request_offset; /* how much the read callback handed out */
	int			retry_after_ms; /* from a Retry-After header, or -1 */
	int			ratelimit_reset_ms; /* X-RateLimit-Reset-Default, or -1 */
	int			ratelimit_remaining;	/* X-RateLimit-Remaining-Default, or -1 */
	const char *refresh_token;	/* the one sent, if any: never echoed back */
	double		sent_at_ms;		/* wall clock when set up, for expires_in */
	bool		https;
	size_t		body_len;
	bool		body_over_cap;
	char		curl_error[CURL_ERROR_SIZE];
	char		body[CAL_BODY_MAX + 1];
};

static size_t
calcom_transfer_write_cb(char *data, size_t size, size_t nmemb, void *userp)
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
 * Hands curl the request body.  It can be rewound only while none of it
 * has been read (curl 8 rewinds at the start of every upload): when a
 * kept-alive connection dies after the body went out, libcurl would
 * silently re-send the request on a new connection, spending a refresh
 * token twice.  Unable to rewind, it fails the transfer instead
 * (CURLE_SEND_FAIL_REWIND), and the retry and fallback rules decide.
 */
static int
calcom_transfer_seek_cb(void *userp, curl_off_t offset, int origin)
{
	CalTransfer *transfer = (CalTransfer *) userp;

	if (offset == 0 && origin == SEEK_SET && transfer->request_offset == 0)
		return CURL_SEEKFUNC_OK;
	return CURL_SEEKFUNC_CANTSEEK;
}

static size_t
calcom_transfer_read_cb(char *buffer, size_t size, size_t nitems, void *userp)
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
 * trimmed of white space at both ends, into value (value_size bytes) and
 * returns true.
 */
static bool
calcom_transfer_header_value(const char *data, size_t n, const char *name,
							 char *value, size_t value_size)
{
	size_t		name_len = strlen(name);
	size_t		len;

	if (n <= name_len || pg_strncasecmp(data, name, name_len) != 0)
		return false;
	data += name_len;
	n -= name_len;
	while (n > 0 && (*data == ' ' || *data == '\t'))
	{
		data++;
		n--;
	}
	len = Min(n, value_size - 1);
	memcpy(value, data, len);
	while (len > 0 && isspace((unsigned char) value[len - 1]))
		len--;
	value[len] = '\0';
	return true;
}

/*
 * A header's unsigned decimal number, saturated at limit (which it never
 * exceeds, however many digits it has); -1 when it is not one.
 */
static int64
calcom_transfer_header_number(const char *value, int64 limit)
{
	int64		number = 0;
	const char *p;

	if (*value == '\0')
		return -1;
	for (p = value; *p != '\0'; p++)
	{
		if (*p < '0' || *p > '9')
			return -1;
		if (number < limit)
			number = Min(number * 10 + (*p - '0'), limit);
	}
	return number;
}

/*
 * Picks Retry-After (seconds or an HTTP date), Cal.com's remaining request
 * count and the seconds until its window resets out of the response
 * headers.  Times are capped at CAL_PAUSE_MAX_MS: no server's word pauses
 * the cluster for longer.
 */
static size_t
calcom_transfer_header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	CalTransfer *transfer = (CalTransfer *) userp;
	size_t		n = size * nitems;
	char		value[64];
	int64		number;

	if (calcom_transfer_header_value(data, n, "retry-after:", value,
									 sizeof(value)))
	{
		number = calcom_transfer_header_number(value, CAL_PAUSE_MAX_MS / 1000);
		if (number >= 0)
			transfer->retry_after_ms = (int) number * 1000;
		else
		{
			time_t		when = curl_getdate(value, NULL);
			time_t		now = time(NULL);

			if (when > 0)
				transfer->retry_after_ms = when <= now ? 0 :
					(int) Min((int64) (when - now), CAL_PAUSE_MAX_MS / 1000) * 1000;
		}
	}
	else if (calcom_transfer_header_value(data, n,
										  "x-ratelimit-reset-default:",
										  value, sizeof(value)))
	{
		/* Seconds until the window (or the block) ends, per Cal.com's source. */
		number = calcom_transfer_header_number(value, CAL_PAUSE_MAX_MS / 1000);
		if (number >= 0)
			transfer->ratelimit_reset_ms = (int) number * 1000;
	}
	else if (calcom_transfer_header_value(data, n,
										  "x-ratelimit-remaining-default:",
										  value, sizeof(value)))
	{
		number = calcom_transfer_header_number(value, INT_MAX);
		if (number >= 0)
			transfer->ratelimit_remaining = (int) number;
	}
	return n;
}

/*
 * curl's sockets are counted against the backend's file descriptors, as
 * postgres_fdw counts its connections, so that fd.c leaves room for them
 * (a batch may hold a hundred).  Without room, the connection fails.
 */
static curl_socket_t
calcom_transfer_open_socket(void *clientp, curlsocktype purpose,
							struct curl_sockaddr *address)
{
	curl_socket_t fd;

	if (!AcquireExternalFD())
		return CURL_SOCKET_BAD;
	fd = socket(address->family, address->socktype, address->protocol);
	if (fd == CURL_SOCKET_BAD)
		ReleaseExternalFD();
	return fd;
}

static int
calcom_transfer_close_socket(void *clientp, curl_socket_t fd)
{
	ReleaseExternalFD();
	return close(fd);
}

/* Appends a header line; false when libcurl is out of memory. */
static bool
calcom_transfer_append_header(CalTransfer *transfer, const char *line)
{
	struct curl_slist *grown = curl_slist_append(transfer->headers, line);

	if (grown == NULL)
		return false;
	transfer->headers = grown;
	return true;
}

/*
 * The request's headers, as its endpoint authenticates: the managed-user
 * routes with the secret in a header, the OAuth2 token endpoint with the
 * credentials in its form body (and no secret header at all).
 */
static void
calcom_transfer_build_headers(const CalClientConfig *config,
							  CalTransfer *transfer)
{
	const CalEndpointDesc *desc = transfer->desc;
	const char *content_type = NULL;
	bool		ok;

	if (desc->request == CAL_REQUEST_OAUTH2_FORM)
		content_type = "Content-Type: application/x-www-form-urlencoded";
	else if (desc->request != CAL_REQUEST_GET)
		content_type = "Content-Type: application/json";
	ok = (content_type == NULL ||
		  calcom_transfer_append_header(transfer, content_type)) &&
		calcom_transfer_append_header(transfer, "Accept: application/json") &&
	/* No "100-continue" round trip for a body of a few bytes. */
		calcom_transfer_append_header(transfer, "Expect:");
	if (ok && desc->auth == CAL_AUTH_SECRET_HEADER)
	{
		char	   *client_line = psprintf("x-cal-client-id: %s",
										   config->client_id);
		size_t		line_len = strlen(config->secret_key) + 32;
		char	   *secret_line;

		/* Nothing may raise between here and the wipe. */
		secret_line = palloc(line_len);
		snprintf(secret_line, line_len, "x-cal-secret-key: %s",
				 config->secret_key);
		ok = calcom_transfer_append_header(transfer, client_line) &&
			calcom_transfer_append_header(transfer, secret_line);
		explicit_bzero(secret_line, line_len);
		pfree(secret_line);
	}
	if (!ok)
	{
		calcom_transfer_free(transfer);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
}

static void
calcom_transfer_set_options(const CalClientConfig *config, const char *url,
							int budget_ms, CalTransfer *transfer)
{
	CURL	   *easy = transfer->easy;

	/* Start from defaults every time; live connections survive a reset. */
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	if (transfer->request_body == NULL)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else
	{
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE,
						 (long) transfer->request_len);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, calcom_transfer_read_cb);
		curl_easy_setopt(easy, CURLOPT_READDATA, transfer);
		curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, calcom_transfer_seek_cb);
		curl_easy_setopt(easy, CURLOPT_SEEKDATA, transfer);
	}
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, calcom_transfer_header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "cal_refresh/1.1");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, calcom_transfer_write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->curl_error);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
					 calcom_transfer_open_socket);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
					 calcom_transfer_close_socket);
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
	/*
	 * A proxy from the server's environment must not see loopback calls,
	 * whichever loopback address api_url names: no proxy at all for them.
	 */
	if (calcom_url_is_loopback(url))
		curl_easy_setopt(easy, CURLOPT_PROXY, "");
#ifdef CAL_HAVE_CURLOPT_QUICK_EXIT
	curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
#endif
}

/*
 * Sets up easy for one request of the endpoint to url within budget_ms:
 * a POST of request_body, or a GET when it is NULL.
 * refresh_token is the one the body carries (or NULL): an error body that
 * quotes it back is not described.
 */
CalTransfer *
calcom_transfer_create(const CalClientConfig *config, CURL *easy,
					   CalEndpoint endpoint, const char *url,
					   const char *request_body, const char *refresh_token,
					   int budget_ms)
{
	/* Not palloc0: zeroing the 64 kB body buffer would be wasted work. */
	CalTransfer *transfer = palloc(sizeof(CalTransfer));

	memset(transfer, 0, offsetof(CalTransfer, body));
	transfer->body[0] = '\0';
	transfer->desc = calcom_endpoint(endpoint);
	transfer->easy = easy;
	transfer->sent_at_ms = floor((double) GetCurrentTimestamp() / 1000.0) +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000.0;
	transfer->request_body = request_body;
	transfer->request_len = request_body == NULL ? 0 : strlen(request_body);
	transfer->refresh_token = refresh_token;
	transfer->retry_after_ms = -1;
	transfer->ratelimit_reset_ms = -1;
	transfer->ratelimit_remaining = -1;
	transfer->https = pg_strncasecmp(config->api_url, "https:", 6) == 0;
	calcom_transfer_build_headers(config, transfer);
	calcom_transfer_set_options(config, url, budget_ms, transfer);
	return transfer;
}

/*
 * Which phase a timed-out transfer was in, from curl's own timings.  A
 * reused connection has no DNS, connect or TLS time, so once the request
 * is sent only the response phases are considered.
 */
static const char *
calcom_transfer_timeout_phase(const CalTransfer *transfer, bool request_sent)
{
	curl_off_t	namelookup = 0;
	curl_off_t	connect = 0;
	curl_off_t	appconnect = 0;
	long		header_bytes = 0;

	curl_easy_getinfo(transfer->easy, CURLINFO_NAMELOOKUP_TIME_T, &namelookup);
	curl_easy_getinfo(transfer->easy, CURLINFO_CONNECT_TIME_T, &connect);
	curl_easy_getinfo(transfer->easy, CURLINFO_APPCONNECT_TIME_T, &appconnect);
	curl_easy_getinfo(transfer->easy, CURLINFO_HEADER_SIZE, &header_bytes);
	if (request_sent)
		return header_bytes == 0 ? "waiting for the response" :
			"reading the response";
	if (namelookup == 0)
		return "resolving the host name";
	if (connect == 0)
		return "connecting";
	if (transfer->https && appconnect == 0)
		return "the TLS handshake";
	return "sending the request";
}

/* Does the response body contain needle (a secret) anywhere? */
static bool
calcom_transfer_body_quotes(const CalTransfer *transfer, const char *needle)
{
	return needle != NULL && needle[0] != '\0' &&
		memmem(transfer->body, transfer->body_len, needle, strlen(needle)) != NULL;
}

/*
 * Copies curl's error text (which may quote what the server sent, a bad
 * header line say) as printable ASCII.
 */
static void
calcom_transfer_curl_message(const CalTransfer *transfer, CURLcode code,
							 char *message)
{
	const char *text = transfer->curl_error[0] != '\0' ?
		transfer->curl_error : curl_easy_strerror(code);
	size_t		i;

	for (i = 0; i < CAL_MESSAGE_MAX - 1 && text[i] != '\0'; i++)
		message[i] = (char) ((text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?');
	message[i] = '\0';
}

/*
 * How long Cal.com asks everyone to wait after a 429: its Retry-After, or
 * else until its window resets; its throttler sends no Retry-After and
 * blocks a client for 60 s, so without either header that long.
 */
static int
calcom_transfer_throttle_pause_ms(const CalTransfer *transfer)
{
	if (transfer->retry_after_ms >= 0)
		return transfer->retry_after_ms;
	if (transfer->ratelimit_reset_ms >= 0)
		return transfer->ratelimit_reset_ms;
	return CAL_PAUSE_MAX_MS;
}

/*
 * A lifetime (OAuth2's expires_in) becomes an expiry counted from when the
 * request was set up: Cal.com issued the token after that, so the token is
 * never believed to live longer than it does.
 */
static void
calcom_transfer_date_expiry(const CalTransfer *transfer, CalTokens *tokens)
{
	if (!tokens->has_expires_in || tokens->has_access_expiry)
		return;
	tokens->has_access_expiry = true;
	tokens->access_expires_ms = transfer->sent_at_ms +
		tokens->expires_in_s * 1000.0;
}

/*
 * Describes an error body, unless it quotes a credential back: as sent,
 * once its JSON escapes are decoded, or percent-encoded as a form body
 * carries them (the OAuth2 token endpoint's, secret included).
 */
static void
calcom_transfer_describe_error(const CalClientConfig *config,
							   const CalTransfer *transfer,
							   char description[CAL_MESSAGE_MAX])
{
	const char *credentials[4] = {config->secret_key, transfer->refresh_token,
	NULL, NULL};
	bool		quoted = false;
	size_t		i;

	if (transfer->desc->request == CAL_REQUEST_OAUTH2_FORM)
	{
		credentials[2] = calcom_endpoint_form_value(config->secret_key);
		if (transfer->refresh_token != NULL)
			credentials[3] = calcom_endpoint_form_value(transfer->refresh_token);
	}
	for (i = 0; i < lengthof(credentials); i++)
		quoted |= calcom_transfer_body_quotes(transfer, credentials[i]);
	if (quoted ||
		!calcom_describe_error(transfer->body, transfer->body_len,
							   credentials, (int) lengthof(credentials),
							   description, CAL_MESSAGE_MAX))
		snprintf(description, CAL_MESSAGE_MAX,
				 "error description withheld: it quoted a credential");
	for (i = 2; i < lengthof(credentials); i++)
		if (credentials[i] != NULL)
		{
			explicit_bzero((char *) credentials[i], strlen(credentials[i]));
			pfree((char *) credentials[i]);
		}
}

/* A transfer curl ended with an error: what went wrong, into result. */
static void
calcom_transfer_classify_failed(CalTransfer *transfer, CURLcode code,
								long status, CalCallResult *result)
{
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
				 calcom_transfer_timeout_phase(transfer, result->request_sent));
	}
	else if (code == CURLE_SEND_FAIL_REWIND)
	{
		result->outcome = CAL_NETWORK_ERROR;
		result->request_sent = true;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "connection lost after the request was sent");
	}
	else
	{
		result->outcome = CAL_NETWORK_ERROR;
		calcom_transfer_curl_message(transfer, code, result->message);
	}
}

/* A 2xx answer: the tokens it carries, or why they cannot be used. */
static void
calcom_transfer_classify_success(CalTransfer *transfer, long status,
								 CalCallResult *result)
{
	char		description[CAL_MESSAGE_MAX];

	if (!calcom_body_is_json_shaped(transfer->body, transfer->body_len))
	{
		/*
		 * Not JSON at all (a maintenance page, a captive proxy): the request
		 * never reached Cal.com's API, so this is the service's trouble, as
		 * a 5xx is, and not the user's.
		 */
		result->outcome = CAL_UNAVAILABLE;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "HTTP %ld: non-JSON body (a maintenance page or a proxy?)",
				 status);
	}
	else if (transfer->desc->parse(transfer->body, transfer->body_len,
								   &result->tokens, description,
								   sizeof(description)))
	{
		result->outcome = CAL_OK;
		calcom_transfer_date_expiry(transfer, &result->tokens);
	}
	else
	{
		result->outcome = CAL_BAD_RESPONSE;
		snprintf(result->message, CAL_MESSAGE_MAX, "HTTP %ld: %s",
				 status, description);
	}
	explicit_bzero(description, sizeof(description));
}

/* Any other answer: a redirect, or Cal.com's (or a proxy's) error. */
static void
calcom_transfer_classify_refusal(const CalClientConfig *config,
								 CalTransfer *transfer, long status,
								 CalCallResult *result)
{
	char		description[CAL_MESSAGE_MAX];

	if (status >= 300 && status < 400)
	{
		result->outcome = CAL_BAD_RESPONSE;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "HTTP %ld: redirects are not followed", status);
		return;
	}
	if (status == 429 || status >= 500)
		result->outcome = CAL_UNAVAILABLE;
	else if (status >= 400)
		result->outcome = CAL_REJECTED;
	else
		result->outcome = CAL_BAD_RESPONSE;
	calcom_transfer_describe_error(config, transfer, description);
	snprintf(result->message, CAL_MESSAGE_MAX, "HTTP %ld: %s", status,
			 description);
	explicit_bzero(description, sizeof(description));
}

/*
 * Turns the finished (or failed) transfer into *result, overwriting it,
 * and reports what Cal.com said of its rate limit (-1: nothing).
 */
void
calcom_transfer_classify(const CalClientConfig *config, CalTransfer *transfer,
						 CURLcode code, CalCallResult *result,
						 int *ratelimit_remaining)
{
	long		status = 0;
	long		request_size = 0;
	curl_off_t	total_us = 0;
	CalEndpoint endpoint = result->endpoint;

	explicit_bzero(result, sizeof(*result));
	result->endpoint = endpoint;
	curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(transfer->easy, CURLINFO_REQUEST_SIZE, &request_size);
	curl_easy_getinfo(transfer->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	result->http_status = status;
	result->request_sent = request_size > 0;
	result->elapsed_ms = (int) (total_us / 1000);
	result->retry_after_ms = status == 429 ?
		calcom_transfer_throttle_pause_ms(transfer) : transfer->retry_after_ms;
	*ratelimit_remaining = transfer->ratelimit_remaining;
	result->body_over_cap = transfer->body_over_cap;

	if (code != CURLE_OK)
		calcom_transfer_classify_failed(transfer, code, status, result);
	else if (status >= 200 && status < 300)
		calcom_transfer_classify_success(transfer, status, result);
	else
		calcom_transfer_classify_refusal(config, transfer, status, result);
}

/* Wipes the headers (they hold the secret) and the body, and frees. */
void
calcom_transfer_free(CalTransfer *transfer)
{
	struct curl_slist *item;

	/* The easy handle must keep no pointer into what is freed here. */
	curl_easy_reset(transfer->easy);
	for (item = transfer->headers; item != NULL; item = item->next)
		explicit_bzero(item->data, strlen(item->data));
	curl_slist_free_all(transfer->headers);
	explicit_bzero(transfer->body, transfer->body_len);
	pfree(transfer);
}
