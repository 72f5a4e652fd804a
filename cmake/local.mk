# cmake/: the CMake package (find_package(redislock)), installed with the
# library.  The files are made here rather than by configure, so that the
# install paths in them are expanded (libdir is "${exec_prefix}/lib" in
# configure's terms).  tests/check-cmake.sh builds a CMake project against
# an installed copy.
cmakedir = $(libdir)/cmake/redislock
cmake_DATA = cmake/redislockConfig.cmake cmake/redislockConfigVersion.cmake
CLEANFILES += $(cmake_DATA)
EXTRA_DIST += cmake/redislockConfig.cmake.in cmake/redislockConfigVersion.cmake.in \
	tests/check-cmake.sh tests/cmake/CMakeLists.txt tests/cmake/app.c
TESTS += tests/check-cmake.sh

cmake_subst = $(SED) \
	-e 's|@VERSION[@]|$(VERSION)|g' \
	-e 's|@REDISLOCK_VERSION_MAJOR[@]|$(REDISLOCK_VERSION_MAJOR)|g' \
	-e 's|@REDISLOCK_VERSION_MINOR[@]|$(REDISLOCK_VERSION_MINOR)|g' \
	-e 's|@REDISLOCK_SO_MAJOR[@]|$(REDISLOCK_SO_MAJOR)|g' \
	-e 's|@REDISLOCK_SIZEOF_VOID_P[@]|$(REDISLOCK_SIZEOF_VOID_P)|g' \
	-e 's|@REDISLOCK_CMAKE_TLS[@]|$(REDISLOCK_CMAKE_TLS)|g' \
	-e 's|@REDISLOCK_CMAKE_LIBDIR[@]|$(libdir)|g' \
	-e 's|@REDISLOCK_CMAKE_INCLUDEDIR[@]|$(includedir)|g' \
	-e 's|@REDISLOCK_CMAKE_HIREDIS_LIBDIR[@]|$(HIREDIS_LIBDIR)|g'

cmake/redislockConfig.cmake: $(srcdir)/cmake/redislockConfig.cmake.in Makefile
	$(AM_V_GEN)$(MKDIR_P) cmake && $(cmake_subst) $(srcdir)/cmake/redislockConfig.cmake.in > $@-t && mv $@-t $@
cmake/redislockConfigVersion.cmake: $(srcdir)/cmake/redislockConfigVersion.cmake.in Makefile
	$(AM_V_GEN)$(MKDIR_P) cmake && $(cmake_subst) $(srcdir)/cmake/redislockConfigVersion.cmake.in > $@-t && mv $@-t $@
