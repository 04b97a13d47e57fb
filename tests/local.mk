# The TAP harness shared by every C test program, and the test lists.
check_LIBRARIES += tests/libtap.a
tests_libtap_a_SOURCES = tests/tap.c tests/tap.h
TEST_LIBS = tests/libtap.a $(ENGINE_LIBS)
EXTRA_DIST += tests/run-python.sh
