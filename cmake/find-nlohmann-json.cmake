# Provides nlohmann_json::nlohmann_json (nlohmann-json, Debian's
# nlohmann-json3-dev, header-only), which <coring/http/client.hpp> includes
# for JSON bodies: a public dependency of coring::net. Included by
# net/CMakeLists.txt in the build and by the installed coringConfig.cmake.

if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.2 QUIET CONFIG)
  if(NOT nlohmann_json_FOUND)
    message(FATAL_ERROR
      "coring::net needs nlohmann-json, which was not found.\n"
      "On Debian or Ubuntu: sudo apt-get install nlohmann-json3-dev "
      "(or run scripts/install-deps), then configure again with a fresh cache.")
  endif()
endif()
