/* signals.c: see signals.h. The handler only write()s, which is
 * async-signal-safe, and keeps errno for the code it interrupted. */
#include "config.h"

#include "daemon/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int signo)
{
	int saved = errno;
	unsigned char c = (unsigned char)signo;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* pipe full: enough signals are already pending */
	}
	errno = saved;
}

int signals_init(void)
{
	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill us */
	return 0;
}

int signals_fd(void)
{
	return sig_pipe[0];
}

int signals_next(void)
{
	unsigned char c;
	return read(sig_pipe[0], &c, 1) == 1 ? c : 0;
}
