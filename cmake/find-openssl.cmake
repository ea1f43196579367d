# Provides the imported targets OpenSSL::SSL and OpenSSL::Crypto (OpenSSL 3),
# which coring::net links for TLS. Included by net/CMakeLists.txt in the build
# and by the installed coringConfig.cmake in a user's project.

if(NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 3 COMPONENTS SSL Crypto)
  if(NOT OpenSSL_FOUND)
    message(FATAL_ERROR
      "coring::net needs OpenSSL 3 (libssl), which was not found.\n"
      "On Debian or Ubuntu: sudo apt-get install libssl-dev "
      "(or run scripts/install-deps), then configure again with a fresh cache.")
  endif()
endif()
