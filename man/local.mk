# man/: the manual pages, written in roff with the man(7) macros. They are
# sources, not build products: edit them here. stratad.8 and stratad.conf.5
# name installation paths (the settings file, the units, the docs), so they
# are made from .in templates by make with the configured directories, as the
# units are (packaging/local.mk's packaging_edit).
dist_man_MANS += \
	man/strata.1 \
	man/strata-http.1 \
	man/strata-model.1
nodist_man_MANS = \
	man/stratad.conf.5 \
	man/stratad.8
CLEANFILES += $(nodist_man_MANS)
EXTRA_DIST += man/stratad.conf.5.in man/stratad.8.in

man/stratad.8: $(srcdir)/man/stratad.8.in Makefile
	$(AM_V_GEN)$(MKDIR_P) man && rm -f $@ $@.tmp && \
	$(packaging_edit) $(srcdir)/man/stratad.8.in >$@.tmp && mv $@.tmp $@

man/stratad.conf.5: $(srcdir)/man/stratad.conf.5.in Makefile
	$(AM_V_GEN)$(MKDIR_P) man && rm -f $@ $@.tmp && \
	$(packaging_edit) $(srcdir)/man/stratad.conf.5.in >$@.tmp && mv $@.tmp $@

# groff -ww finds roff mistakes; each page against the --help of its program
# finds options that are missing from the page.
TESTS += tests/test-man.sh
dist_check_SCRIPTS += tests/test-man.sh
