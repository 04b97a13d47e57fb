# man/: the manual pages, written in roff with the man(7) macros. They are
# sources, not build products: edit them here.
dist_man_MANS += \
	man/strata.1 \
	man/strata-http.1 \
	man/strata-model.1 \
	man/stratad.conf.5 \
	man/stratad.8

# groff -ww finds roff mistakes; each page against the --help of its program
# finds options that are missing from the page.
TESTS += tests/test-man.sh
dist_check_SCRIPTS += tests/test-man.sh
