# Provides the imported target coring::liburing (liburing, the io_uring helper
# library). Included by runtime/CMakeLists.txt in the build and by the installed
# coringConfig.cmake in a user's project, so both see the same target.
#
# Set CORING_LIBURING_ROOT, or the cache variables CORING_LIBURING_INCLUDE_DIR and
# CORING_LIBURING_LIBRARY, to use a liburing outside the default search paths.

if(NOT TARGET coring::liburing)
  find_path(CORING_LIBURING_INCLUDE_DIR
    NAMES liburing.h
    HINTS "${CORING_LIBURING_ROOT}" ENV CORING_LIBURING_ROOT
    PATH_SUFFIXES include
    DOC "Directory holding liburing.h")
  find_library(CORING_LIBURING_LIBRARY
    NAMES uring
    HINTS "${CORING_LIBURING_ROOT}" ENV CORING_LIBURING_ROOT
    PATH_SUFFIXES lib lib64
    DOC "liburing library")

  if(NOT CORING_LIBURING_INCLUDE_DIR OR NOT CORING_LIBURING_LIBRARY)
    message(FATAL_ERROR
      "coring needs liburing, which was not found "
      "(liburing.h: ${CORING_LIBURING_INCLUDE_DIR}, library: ${CORING_LIBURING_LIBRARY}).\n"
      "On Debian or Ubuntu: sudo apt-get install liburing-dev "
      "(or run scripts/install-deps), then configure again with a fresh cache.")
  endif()

  add_library(coring::liburing UNKNOWN IMPORTED)
  set_target_properties(coring::liburing PROPERTIES
    IMPORTED_LOCATION "${CORING_LIBURING_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CORING_LIBURING_INCLUDE_DIR}")
  mark_as_advanced(CORING_LIBURING_INCLUDE_DIR CORING_LIBURING_LIBRARY)
endif()
