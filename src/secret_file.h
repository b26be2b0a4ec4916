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

/*
 * Returns the secret held in the file at path.  On SECRET_FILE_OK, *secret
 * points at a cached copy valid until the next call; otherwise *problem is
 * a palloc'd description that names the path, never the contents.
 */
extern SecretFileStatus secret_file_get(const char *path, const char **secret,
										char **problem);

#endif							/* SECRET_FILE_H */
