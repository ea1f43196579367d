# Provides coring_llhttp, an OBJECT library compiled from the llhttp C sources
# that Debian's node-llhttp package ships (/usr/share/llhttp/*.c and
# /usr/share/include/llhttp/llhttp.h). coring::net takes its objects, so
# nothing of llhttp is installed or exported. Only the build needs this file;
# its name keeps it out of the find-*.cmake modules that the installed package
# config includes (a user's project may not even enable C).
#
# Set CORING_LLHTTP_SOURCE_DIR / CORING_LLHTTP_INCLUDE_DIR to use other copies.

set(CORING_LLHTTP_SOURCE_DIR "/usr/share/llhttp" CACHE PATH "Directory holding llhttp's api.c, http.c, llhttp.c")
find_path(CORING_LLHTTP_INCLUDE_DIR
  NAMES llhttp.h
  HINTS /usr/share/include/llhttp
  DOC "Directory holding llhttp.h")

foreach(_llhttp_file api.c http.c llhttp.c)
  if(NOT EXISTS "${CORING_LLHTTP_SOURCE_DIR}/${_llhttp_file}")
    set(_llhttp_missing "${CORING_LLHTTP_SOURCE_DIR}/${_llhttp_file}")
  endif()
endforeach()
if(_llhttp_missing OR NOT CORING_LLHTTP_INCLUDE_DIR)
  message(FATAL_ERROR
    "coring::net needs llhttp's C sources, which were not found "
    "(${_llhttp_missing}; llhttp.h: ${CORING_LLHTTP_INCLUDE_DIR}).\n"
    "On Debian or Ubuntu: sudo apt-get install node-llhttp "
    "(or run scripts/install-deps), then configure again with a fresh cache.")
endif()

add_library(coring_llhttp OBJECT
  "${CORING_LLHTTP_SOURCE_DIR}/api.c"
  "${CORING_LLHTTP_SOURCE_DIR}/http.c"
  "${CORING_LLHTTP_SOURCE_DIR}/llhttp.c")
target_include_directories(coring_llhttp PRIVATE "${CORING_LLHTTP_INCLUDE_DIR}")
set_target_properties(coring_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
# llhttp.c holds two parsers; LLHTTP_STRICT_MODE selects the strict one, which
# refuses what the lenient one skips over (chunk data not followed by CRLF, a
# bare CR or LF where a CRLF belongs). The header gives 0 unless it is set.
target_compile_definitions(coring_llhttp PRIVATE LLHTTP_STRICT_MODE=1)
# Generated third-party code: our warning flags (and -Werror) are not its
# contract. Sanitizer flags still apply, as they must for the objects to link.
target_compile_options(coring_llhttp PRIVATE -w)

unset(_llhttp_file)
unset(_llhttp_missing)
