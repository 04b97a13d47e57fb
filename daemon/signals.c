/* signals.c: see signals.h. The handler only calls what is async-signal-safe
 * (write, unlink, _exit) and keeps errno for the code it interrupted. */
#include "config.h"

#include "daemon/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int sig_pipe[2] = { -1, -1 };
/* Set once the event loop watches the pipe; until then SIGTERM/SIGINT end the
 * process from the handler. */
static volatile sig_atomic_t loop_running;
/* The socket this process bound, to remove on such an end (when sock_set). */
static char sock_path[108];
static volatile sig_atomic_t sock_set;

static void on_signal(int signo)
{
	int saved = errno;
	if (!loop_running && (signo == SIGTERM || signo == SIGINT)) {
		/* Start-up (settings, model loading: minutes for 40 GB) has
		 * nothing to finish or flush: stop now, as cleanly as a handler
		 * may. */
		static const char msg[] = "<5>stopping during start-up\n";
		if (sock_set)
			unlink(sock_path);
		if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
			/* nowhere to say it */
		}
		_exit(SIGNALS_STARTUP_EXIT);
	}
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

void signals_set_socket(const char *path)
{
	sock_set = 0;
	if (!path || !*path || strlen(path) >= sizeof sock_path)
		return;
	memcpy(sock_path, path, strlen(path) + 1);
	sock_set = 1; /* only now: the handler never sees half a path */
}

void signals_loop_started(void)
{
	loop_running = 1;
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
