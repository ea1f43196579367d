# Provides ZLIB::ZLIB (zlib, Debian's zlib1g-dev), which coring::net links to
# decode gzip and deflate bodies in the HTTP client. Included by
# net/CMakeLists.txt in the build and by the installed coringConfig.cmake in a
# user's project (coring::net is a static library: its users link zlib too).

if(NOT TARGET ZLIB::ZLIB)
  find_package(ZLIB QUIET)
  if(NOT ZLIB_FOUND)
    message(FATAL_ERROR
      "coring::net needs zlib, which was not found.\n"
      "On Debian or Ubuntu: sudo apt-get install zlib1g-dev "
      "(or run scripts/install-deps), then configure again with a fresh cache.")
  endif()
endif()
