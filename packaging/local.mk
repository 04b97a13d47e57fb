# packaging/: systemd units, sysusers.d and tmpfiles.d entries, the example
# settings file, and the Debian packaging (packaging/debian, copied to debian/
# only when building a .deb; see packaging/README.md).

# The units come from .in templates. They are made by make, not by
# config.status (AC_CONFIG_FILES), so that `make prefix=...` and
# `make install sbindir=...` reach them too (the automake manual's advice for
# files that embed installation directories).
# (man/local.mk uses the same edit for the pages that name these paths.)
packaging_edit = sed \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@bindir[@]|$(bindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@docdir[@]|$(docdir)|g' \
	-e 's|@systemdsystemunitdir[@]|$(systemdsystemunitdir)|g' \
	-e 's|@sysusersdir[@]|$(sysusersdir)|g' \
	-e 's|@tmpfilesdir[@]|$(tmpfilesdir)|g'

packaging/systemd/stratad.service: $(srcdir)/packaging/systemd/stratad.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) packaging/systemd && rm -f $@ $@.tmp && \
	$(packaging_edit) $(srcdir)/packaging/systemd/stratad.service.in >$@.tmp && \
	mv $@.tmp $@

packaging/systemd/stratad.socket: $(srcdir)/packaging/systemd/stratad.socket.in Makefile
	$(AM_V_GEN)$(MKDIR_P) packaging/systemd && rm -f $@ $@.tmp && \
	$(packaging_edit) $(srcdir)/packaging/systemd/stratad.socket.in >$@.tmp && \
	mv $@.tmp $@

packaging/systemd/strata-http.service: $(srcdir)/packaging/systemd/strata-http.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) packaging/systemd && rm -f $@ $@.tmp && \
	$(packaging_edit) $(srcdir)/packaging/systemd/strata-http.service.in >$@.tmp && \
	mv $@.tmp $@

nodist_systemdsystemunit_DATA = \
	packaging/systemd/stratad.service \
	packaging/systemd/stratad.socket \
	packaging/systemd/strata-http.service
# strata-http.socket has no paths to fill in.
dist_systemdsystemunit_DATA = packaging/systemd/strata-http.socket
CLEANFILES += $(nodist_systemdsystemunit_DATA)

# systemd-sysusers and systemd-tmpfiles read $(prefix)/lib/... for both /usr
# and /usr/local, so these follow the prefix (distcheck included).
sysusersdir = $(prefix)/lib/sysusers.d
dist_sysusers_DATA = packaging/sysusers/strata.conf
tmpfilesdir = $(prefix)/lib/tmpfiles.d
dist_tmpfiles_DATA = packaging/tmpfiles/strata.conf

# $(sysconfdir)/strata/stratad.conf, every key commented out: the file the
# unit's --config names. Installed only when absent, so that a reinstall
# keeps the administrator's edits; uninstalled only when unchanged.
# (Prerequisites, not recipes, on the *-local targets: other folders may add
# their own.)
strataconfdir = $(sysconfdir)/strata
install-data-local: install-stratad-conf
uninstall-local: uninstall-stratad-conf
install-stratad-conf:
	$(MKDIR_P) '$(DESTDIR)$(strataconfdir)'
	if test -f '$(DESTDIR)$(strataconfdir)/stratad.conf'; then \
	  echo "keeping $(DESTDIR)$(strataconfdir)/stratad.conf (the example is in $(docdir))"; \
	else \
	  $(INSTALL_DATA) $(srcdir)/packaging/stratad.conf '$(DESTDIR)$(strataconfdir)/stratad.conf'; \
	fi
uninstall-stratad-conf:
	if cmp -s $(srcdir)/packaging/stratad.conf '$(DESTDIR)$(strataconfdir)/stratad.conf'; then \
	  rm -f '$(DESTDIR)$(strataconfdir)/stratad.conf'; \
	fi
.PHONY: install-stratad-conf uninstall-stratad-conf

# The pristine example stays readable after the live copy is edited.
packagingdocdir = $(docdir)
dist_packagingdoc_DATA = packaging/stratad.conf

EXTRA_DIST += \
	packaging/README.md \
	packaging/systemd/stratad.service.in \
	packaging/systemd/stratad.socket.in \
	packaging/systemd/strata-http.service.in \
	packaging/debian/changelog \
	packaging/debian/control \
	packaging/debian/copyright \
	packaging/debian/rules \
	packaging/debian/source/format

# The units against systemd-analyze (verify, security) and the example
# settings file against the real stratad.
TESTS += tests/test-units.sh
dist_check_SCRIPTS += tests/test-units.sh
