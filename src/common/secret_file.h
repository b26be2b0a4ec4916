/*-------------------------------------------------------------------------
 *
 * secret_file.h
 *		The OAuth client secret, read from a file as PostgreSQL reads its
 *		SSL key: checked permissions, re-read when the file is replaced.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SECRET_FILE_H
#define SECRET_FILE_H

#define SECRET_FILE_MAX_BYTES 4096

typedef enum SecretFileStatus
{
	SECRET_FILE_OK,
	SECRET_FILE_MISSING,		/* unset, absent, unreadable, empty, bad */
	SECRET_FILE_INSECURE		/* readable by more than the server */
} SecretFileStatus;

/* Why a secret file does not pass, one reason per fix. */
typedef enum SecretFileProblem
{
	SECRET_FILE_FINE,
	SECRET_FILE_UNSET,			/* cal_refresh.secret_key_file is '' */
	SECRET_FILE_ABSENT,			/* stat() failed */
	SECRET_FILE_NOT_REGULAR,
	SECRET_FILE_TOO_OPEN,		/* ours, with group or world access */
	SECRET_FILE_ROOT_TOO_OPEN,	/* root's, with more than group read */
	SECRET_FILE_WRONG_OWNER,	/* neither ours nor root's */
	SECRET_FILE_CHANGED,		/* swapped for a worse one while opened */
	SECRET_FILE_UNREADABLE,		/* open() or read() failed */
	SECRET_FILE_NOT_ONE_LINE	/* empty, too large, spaces or controls */
} SecretFileProblem;

/* in secret_file.c */
extern SecretFileStatus secret_file_get(const char *path, const char **secret,
										char **problem);
extern SecretFileProblem secret_file_check(const char *path, char **problem);

#endif							/* SECRET_FILE_H */
