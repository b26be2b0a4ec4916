/*-------------------------------------------------------------------------
 *
 * secret_file.c
 *		Reading and checking the file that holds the OAuth client secret.
 *
 * The secret is never a setting: setting values reach the server log on
 * reload and are readable by pg_read_all_settings members.  The file must
 * pass PostgreSQL's own rule for SSL key files: owned by the server's OS
 * user with no group or world access, or owned by root with at most group
 * read.  Every call stats the file and re-reads it when its identity,
 * size or modification time changed, so replacing the file (a symlink
 * swap included) rotates the secret without a reload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/memutils.h"

#include "secret_file.h"

/* The cached secret and the identity of the file it came from. */
static char cached_secret[SECRET_FILE_MAX_BYTES + 1];
static bool cached_valid = false;
static char *cached_path = NULL;
static struct stat cached_stat;

static bool
same_file_version(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void
forget_cached_secret(void)
{
	explicit_bzero(cached_secret, sizeof(cached_secret));
	cached_valid = false;
}

/* PostgreSQL's rule for ssl_key_file, applied to our secret. */
static SecretFileProblem
check_permissions(const char *path, const struct stat *st, char **problem)
{
	if (st->st_uid == geteuid())
	{
		if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0)
		{
			*problem = psprintf("secret key file \"%s\" has group or world access; "
								"it must be mode 0600 or less",
								path);
			return SECRET_FILE_TOO_OPEN;
		}
	}
	else if (st->st_uid == 0)
	{
		if ((st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0)
		{
			*problem = psprintf("secret key file \"%s\" is owned by root and "
								"allows more than group read; it must be mode "
								"0640 or less",
								path);
			return SECRET_FILE_ROOT_TOO_OPEN;
		}
	}
	else
	{
		*problem = psprintf("secret key file \"%s\" must be owned by the "
							"database server's user or by root",
							path);
		return SECRET_FILE_WRONG_OWNER;
	}
	return SECRET_FILE_FINE;
}

/* Reads the open file into cached_secret; trailing CR/LF are dropped. */
static SecretFileProblem
read_secret(int fd, const char *path, char **problem)
{
	char		buf[SECRET_FILE_MAX_BYTES + 2];
	ssize_t		len = 0;
	ssize_t		n;
	ssize_t		i;
	SecretFileProblem status = SECRET_FILE_FINE;

	while (len < (ssize_t) sizeof(buf) &&
		   (n = read(fd, buf + len, sizeof(buf) - len)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			*problem = psprintf("could not read secret key file \"%s\": %m",
								path);
			explicit_bzero(buf, sizeof(buf));
			return SECRET_FILE_UNREADABLE;
		}
		len += n;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;

	if (len == 0)
	{
		*problem = psprintf("secret key file \"%s\" is empty", path);
		status = SECRET_FILE_NOT_ONE_LINE;
	}
	else if (len > SECRET_FILE_MAX_BYTES)
	{
		*problem = psprintf("secret key file \"%s\" is larger than %d bytes",
							path, SECRET_FILE_MAX_BYTES);
		status = SECRET_FILE_NOT_ONE_LINE;
	}
	for (i = 0; status == SECRET_FILE_FINE && i < len; i++)
	{
		unsigned char c = (unsigned char) buf[i];

		/* It goes into an HTTP header: no room for line breaks. */
		if (c <= 0x20 || c >= 0x7f)
		{
			*problem = psprintf("secret key file \"%s\" contains spaces or "
								"control characters",
								path);
			status = SECRET_FILE_NOT_ONE_LINE;
		}
	}
	if (status == SECRET_FILE_FINE)
	{
		memcpy(cached_secret, buf, len);
		cached_secret[len] = '\0';
	}
	explicit_bzero(buf, sizeof(buf));
	return status;
}

/*
 * The one implementation behind secret_file_get and secret_file_check:
 * *secret is set (to the cached copy) only when the file passes, and
 * *problem then stays NULL.  Never raises for what it finds.
 */
static SecretFileProblem
secret_file_load(const char *path, const char **secret, char **problem)
{
	struct stat st;
	struct stat opened;
	SecretFileProblem why;
	int			fd;

	*secret = NULL;
	*problem = NULL;
	if (path == NULL || path[0] == '\0')
	{
		forget_cached_secret();
		*problem = pstrdup("cal_refresh.secret_key_file is not set");
		return SECRET_FILE_UNSET;
	}

	/* Check before opening, as PostgreSQL does for its key files. */
	if (stat(path, &st) != 0)
	{
		forget_cached_secret();
		*problem = psprintf("could not access secret key file \"%s\": %m", path);
		return SECRET_FILE_ABSENT;
	}
	if (!S_ISREG(st.st_mode))
	{
		forget_cached_secret();
		*problem = psprintf("secret key file \"%s\" is not a regular file", path);
		return SECRET_FILE_NOT_REGULAR;
	}
	why = check_permissions(path, &st, problem);
	if (why != SECRET_FILE_FINE)
	{
		forget_cached_secret();
		return why;
	}

	if (cached_valid && cached_path != NULL && strcmp(cached_path, path) == 0 &&
		same_file_version(&st, &cached_stat))
	{
		*secret = cached_secret;
		return SECRET_FILE_FINE;
	}

	forget_cached_secret();
	/* A transient file is closed by transaction abort if we error out. */
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		*problem = psprintf("could not open secret key file \"%s\": %m", path);
		return SECRET_FILE_UNREADABLE;
	}
	/* The file may have been swapped since stat(): judge what we opened. */
	if (fstat(fd, &opened) != 0 ||
		(!same_file_version(&st, &opened) &&
		 (!S_ISREG(opened.st_mode) ||
		  check_permissions(path, &opened, problem) != SECRET_FILE_FINE)))
	{
		CloseTransientFile(fd);
		if (*problem == NULL)
			*problem = psprintf("secret key file \"%s\" changed while being "
								"opened", path);
		return SECRET_FILE_CHANGED;
	}
	why = read_secret(fd, path, problem);
	CloseTransientFile(fd);
	if (why != SECRET_FILE_FINE)
		return why;

	if (cached_path == NULL || strcmp(cached_path, path) != 0)
	{
		if (cached_path != NULL)
			pfree(cached_path);
		cached_path = MemoryContextStrdup(TopMemoryContext, path);
	}
	cached_stat = opened;
	cached_valid = true;
	*secret = cached_secret;
	return SECRET_FILE_FINE;
}

/*
 * The secret held in the file at path: SECRET_FILE_OK with *secret
 * pointing at a cached copy valid until the next call, or why not, with
 * a palloc'd *problem naming the path, never the contents.  Looser
 * permissions than the rule allows (or a file swapped while opened) are
 * SECRET_FILE_INSECURE; everything else that is wrong, SECRET_FILE_MISSING.
 */
SecretFileStatus
secret_file_get(const char *path, const char **secret, char **problem)
{
	switch (secret_file_load(path, secret, problem))
	{
		case SECRET_FILE_FINE:
			return SECRET_FILE_OK;
		case SECRET_FILE_TOO_OPEN:
		case SECRET_FILE_ROOT_TOO_OPEN:
		case SECRET_FILE_WRONG_OWNER:
		case SECRET_FILE_CHANGED:
			return SECRET_FILE_INSECURE;
		case SECRET_FILE_UNSET:
		case SECRET_FILE_ABSENT:
		case SECRET_FILE_NOT_REGULAR:
		case SECRET_FILE_UNREADABLE:
		case SECRET_FILE_NOT_ONE_LINE:
			break;
	}
	return SECRET_FILE_MISSING;
}

/*
 * What exactly is wrong with the file at path, for cal_refresh_check():
 * the same checks as secret_file_get, the reason kept apart so that a
 * hint can name its fix.  *problem as there (NULL when fine).
 */
SecretFileProblem
secret_file_check(const char *path, char **problem)
{
	const char *secret;

	return secret_file_load(path, &secret, problem);
}
