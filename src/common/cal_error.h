/*-------------------------------------------------------------------------
 *
 * cal_error.h
 *		Every error_code of cal_token_result, and what it means, in one
 *		table: read by every place that decides on a code.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAL_ERROR_H
#define CAL_ERROR_H

/*
 * One row per code: its enum name, the error_code callers see, the
 * SQLSTATE of a function that raises it, whether a recorded failure backs
 * the user off (the scheduled refresh skips them for a while: the failure
 * is the user's own), whether it is the service's trouble (Cal.com down:
 * a batch's circuit breaker counts it), and a stem for messages.  Two rows
 * may share an error_code and differ in what they mean (a client Cal.com
 * refuses is the configuration's trouble, not the user's).
 */
#define CAL_ERROR_TABLE(X) \
	X(CONFIG_MISSING, "config_missing", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, \
	  false, false, "the Cal.com settings are incomplete") \
	X(CONFIG_INSECURE, "config_insecure", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, \
	  false, false, "the Cal.com settings are not safe to use") \
	X(TABLE_INVALID, "table_invalid", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, \
	  true, false, "the table does not fit, or refused the row") \
	X(USER_NOT_FOUND, "user_not_found", ERRCODE_NO_DATA_FOUND, \
	  false, false, "no row for user") \
	X(NO_REFRESH_TOKEN, "no_refresh_token", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, \
	  true, false, "no usable refresh token is stored") \
	X(NO_MANAGED_USER_ID, "no_managed_user_id", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, \
	  true, false, "force refresh is impossible without a Cal.com user id") \
	X(BUSY, "busy", ERRCODE_LOCK_NOT_AVAILABLE, \
	  false, false, "another session held the row lock for longer than cal_refresh.lock_timeout") \
	X(CALCOM_REJECTED, "calcom_rejected", ERRCODE_SYSTEM_ERROR, \
	  true, false, "Cal.com refused the user's tokens") \
	X(CALCOM_CLIENT_REFUSED, "calcom_rejected", ERRCODE_SYSTEM_ERROR, \
	  false, false, "Cal.com refused the OAuth client (401 or 403)") \
	X(CALCOM_UNAVAILABLE, "calcom_unavailable", ERRCODE_SYSTEM_ERROR, \
	  false, true, "Cal.com answered 5xx or 429 after every retry") \
	X(NETWORK_ERROR, "network_error", ERRCODE_SYSTEM_ERROR, \
	  false, true, "no connection to Cal.com") \
	X(TIMEOUT, "timeout", ERRCODE_SYSTEM_ERROR, \
	  false, true, "no answer within cal_refresh.timeout") \
	X(BAD_RESPONSE, "bad_response", ERRCODE_SYSTEM_ERROR, \
	  true, false, "Cal.com's answer could not be used")

#define CAL_ERROR_ENUM(code, name, sqlstate, backs_off, service, stem) \
	CAL_ERROR_##code,

/* CAL_ERROR_NONE, then one per row of the table. */
typedef enum CalError
{
	CAL_ERROR_NONE,
	CAL_ERROR_TABLE(CAL_ERROR_ENUM)
	CAL_ERROR_COUNT
} CalError;

typedef struct CalErrorDesc
{
	const char *name;			/* the error_code; NULL for CAL_ERROR_NONE */
	int			sqlstate;		/* where a function raises it */
	bool		backs_off;
	bool		service_failure;
	const char *stem;
} CalErrorDesc;

/* in cal_error.c */
extern const CalErrorDesc *cal_error(CalError code);
extern const char *cal_error_name(CalError code);

#endif							/* CAL_ERROR_H */
