# doc/: man pages (installed), and a test that they render without warnings
# and document every exported function.
dist_man_MANS += doc/redislock.1 doc/redislock.3 \
	doc/redislock_client_new.3 doc/redislock_new.3 doc/redislock_acquire.3 \
	doc/redislock_release.3 doc/redislock_extend.3 doc/redislock_query.3 \
	doc/redislock_reset.3 doc/redislock_list.3 doc/redislock_strerror.3 \
	doc/redislock_replace_allocator.3 doc/redislock_version.3 \
	doc/redislock_cancel.3 \
	doc/redislock_token.3 doc/redislock_heartbeat.3 doc/redislock_client_stats.3 \
	doc/redislock_cluster_slots.3 doc/redislock_query_queue.3
EXTRA_DIST += doc/man3-links tests/doc/check-man.sh
TESTS += tests/doc/check-man.sh

# The functions documented on a group's page get links to it (doc/man3-links).
install-data-local: install-man3-links
uninstall-local: uninstall-man3-links
install-man3-links:
	$(MKDIR_P) '$(DESTDIR)$(man3dir)'
	sed -e '/^#/d' -e '/^$$/d' $(srcdir)/doc/man3-links | \
	while read alias page; do \
		rm -f "$(DESTDIR)$(man3dir)/$$alias.3" && \
		$(LN_S) "$$page.3" "$(DESTDIR)$(man3dir)/$$alias.3" || exit 1; \
	done
uninstall-man3-links:
	sed -e '/^#/d' -e '/^$$/d' $(srcdir)/doc/man3-links | \
	while read alias page; do rm -f "$(DESTDIR)$(man3dir)/$$alias.3"; done
.PHONY: install-man3-links uninstall-man3-links
