# common/: the ground floor every other folder may use: errors that carry a
# message, logging, the clock, UTF-8, number and size parsing. Nothing here
# knows about models, sockets or threads.
noinst_LIBRARIES += common/libcommon.a
common_libcommon_a_SOURCES = \
	common/err.c common/err.h \
	common/clock.c common/clock.h \
	common/hash.c common/hash.h \
	common/parse.c common/parse.h \
	common/log.c common/log.h \
	common/utf8.c common/utf8.h

check_PROGRAMS += tests/test-utf8
TESTS += tests/test-utf8
tests_test_utf8_SOURCES = tests/test-utf8.c
tests_test_utf8_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/test-parse
TESTS += tests/test-parse
tests_test_parse_SOURCES = tests/test-parse.c
tests_test_parse_LDADD = $(TEST_LIBS)
