# daemon/: stratad: settings, socket, systemd glue, event loop, scheduler.
sbin_PROGRAMS += daemon/stratad
daemon_stratad_SOURCES = \
	daemon/main.c \
	daemon/settings.c daemon/settings.h \
	daemon/listen.c daemon/listen.h \
	daemon/notify.c daemon/notify.h \
	daemon/signals.c daemon/signals.h \
	daemon/server.c daemon/server.h \
	daemon/requests.c daemon/requests.h \
	daemon/sched.c daemon/sched.h
# The settings file's directory as configured (sysconfdir is only known
# expanded at make time, hence a flag and not config.h).
daemon_stratad_CPPFLAGS = $(AM_CPPFLAGS) $(SYSTEMD_CFLAGS) $(PROTOBUF_C_CFLAGS) \
	-DSTRATA_SYSCONFDIR='"$(sysconfdir)"'
daemon_stratad_LDADD = $(PROTO_LIBS) $(ENGINE_LIBS) $(SYSTEMD_LIBS)

# stratad's start-up: settings files that are not text files, SIGTERM during loading.
TESTS += tests/test-start.sh
EXTRA_DIST += tests/test-start.sh
