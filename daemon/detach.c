/* daemon/detach.c: background mode (no --foreground).
 *
 * The classic fork-and-exit would make the shell see success before the
 * pool has even been opened. Instead the parent waits on a pipe: the child
 * writes one byte once it is ready, and the parent exits 0; if the child
 * exits first, the pipe reads EOF and the parent exits 1. The fork happens
 * before the loop and the store's threads exist, so nothing is lost in it.
 */
#define _GNU_SOURCE             /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"

static int daemon_detach_wait(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		return DAEMON_EXIT_OK;
	fprintf(stderr, "sluiced: start-up failed, see the messages above\n");
	return DAEMON_EXIT_FAILED;
}

static int daemon_null_onto(int target)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (dup2(fd, target) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int daemon_detach(struct sluiced *d)
{
	int fds[2], err;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		log_error("detach: pipe: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);                           /* or both processes flush it */
	pid = fork();
	if (pid < 0) {
		err = -errno;
		log_error("detach: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return err;
	}
	if (pid > 0) {
		close(fds[1]);
		_exit(daemon_detach_wait(fds[0]));
	}
	close(fds[0]);
	d->ready_fd = fds[1];
	/* own session: no controlling terminal, no SIGHUP when the shell exits */
	if (setsid() < 0 || chdir("/") < 0) {
		err = -errno;
		log_error("detach: %s", strerror(errno));
		return err;
	}
	err = daemon_null_onto(STDIN_FILENO);
	if (err == 0)
		err = daemon_null_onto(STDOUT_FILENO);
	if (err < 0)
		log_error("detach: /dev/null: %s", strerror(-err));
	return err;
}

void daemon_detach_ready(struct sluiced *d)
{
	ssize_t n;

	if (d->ready_fd < 0)
		return;
	log_info("running in the background, logging to syslog");
	log_target_set(LOG_TARGET_SYSLOG);
	daemon_null_onto(STDERR_FILENO);
	do
		n = write(d->ready_fd, "r", 1);
	while (n < 0 && errno == EINTR);
	close(d->ready_fd);
	d->ready_fd = -1;
}
