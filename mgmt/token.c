/* mgmt/token.c: the API's bearer token.
 *
 * The token is the config's api_token when it names one; otherwise the
 * contents of DATA_DIR/api-token, which the first start creates from 32
 * bytes of getrandom() in hex, mode 0600, written to a temporary name,
 * fsynced and renamed so that a crash never leaves a half-written token.
 * sluicectl reads the same file.
 *
 * The comparison takes the same time whatever the client sent: every byte
 * of our token is compared, and a length mismatch only sets a flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgmt/internal.h"

#define TOKEN_RANDOM_BYTES  32

static bool token_chars_ok(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] <= ' ' || t[i] > '~')  /* it travels in an HTTP header */
			return false;
	return n > 0;
}

static int token_read(struct mgmt_srv *m, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		mgmt_log(m, STORE_LOG_WARN, "%s is readable by others (mode %03o); "
		         "making it 0600", path, (unsigned)(st.st_mode & 0777));
		if (fchmod(fd, 0600) < 0)
			mgmt_log(m, STORE_LOG_WARN, "chmod %s: %s", path, strerror(errno));
	}
	n = read(fd, m->token, sizeof(m->token) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	while (n > 0 && (m->token[n - 1] == '\n' || m->token[n - 1] == '\r'))
		n--;
	m->token[n] = '\0';
	m->token_len = (size_t)n;
	if (!token_chars_ok(m->token, m->token_len)) {
		mgmt_log(m, STORE_LOG_ERR, "%s: the token must be one line of printable "
		         "ASCII without spaces (delete the file to get a new one)", path);
		return -EINVAL;
	}
	return 0;
}

static int token_write(const char *path, const char *tmp, const char *token)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(token);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0)
		err = errno ? -errno : -EIO;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static int token_create(struct mgmt_srv *m, const char *dir, const char *path)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t rnd[TOKEN_RANDOM_BYTES];
	char tmp[PATH_MAX];
	int err, dfd;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -errno;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		m->token[2 * i] = hex[rnd[i] >> 4];
		m->token[2 * i + 1] = hex[rnd[i] & 15];
	}
	m->token_len = 2 * sizeof(rnd);
	m->token[m->token_len] = '\0';
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	err = token_write(path, tmp, m->token);
	if (err < 0)
		return err;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);  /* make the rename durable */
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	mgmt_log(m, STORE_LOG_INFO, "created the API token in %s", path);
	return 0;
}

int mgmt_token_load(struct mgmt_srv *m, const struct mgmt_opts *o)
{
	char path[PATH_MAX];
	int err;

	if (o->api_token && *o->api_token) {
		m->token_len = strlen(o->api_token);
		if (m->token_len >= sizeof(m->token) ||
		    !token_chars_ok(o->api_token, m->token_len)) {
			mgmt_log(m, STORE_LOG_ERR, "api_token must be 1 to 256 bytes of "
			         "printable ASCII without spaces");
			return -EINVAL;
		}
		memcpy(m->token, o->api_token, m->token_len + 1);
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/%s", o->data_dir, MGMT_TOKEN_FILE) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	err = token_read(m, path);
	if (err == -ENOENT)
		err = token_create(m, o->data_dir, path);
	if (err < 0 && err != -EINVAL)
		mgmt_log(m, STORE_LOG_ERR, "API token %s: %s", path, strerror(-err));
	return err;
}

bool mgmt_token_check(const struct mgmt_srv *m, const char *authorization)
{
	const char *given;
	size_t glen;
	unsigned diff = 0;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	given = authorization + 7;
	while (*given == ' ')
		given++;
	glen = strlen(given);
	diff |= glen != m->token_len;
	for (size_t i = 0; i < m->token_len; i++)
		diff |= (unsigned)(uint8_t)(m->token[i] ^ given[glen ? i % glen : 0]);
	return diff == 0 && glen > 0;
}
