# Install rules: the libraries, their public headers, and a CMake package so a
# user's project can say find_package(coring) and link coring::runtime.
# tests/package/ is the consumer that proves it (scripts/test builds it against
# an installed tree). Programs (tools/coring-get) are installed to bin/ by
# tools/CMakeLists.txt.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CORING_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/coring"
  CACHE STRING "Where coringConfig.cmake and its friends are installed, relative to the prefix")
mark_as_advanced(CORING_INSTALL_CMAKEDIR)

# Components that exist in this build; net/ may not be there yet.
set(_coring_install_targets coring_runtime)
set(_coring_include_dirs "${PROJECT_SOURCE_DIR}/runtime/include/")
if(TARGET coring_net)
  list(APPEND _coring_install_targets coring_net)
  list(APPEND _coring_include_dirs "${PROJECT_SOURCE_DIR}/net/include/")
endif()

# EXPORT_NAME makes coring_runtime appear as coring::runtime to users, as the
# alias does in the build (unless the component's CMakeLists.txt chose a name).
foreach(_target IN LISTS _coring_install_targets)
  get_target_property(_export_name ${_target} EXPORT_NAME)
  if(NOT _export_name)
    string(REGEX REPLACE "^coring_" "" _export_name "${_target}")
    set_target_properties(${_target} PROPERTIES EXPORT_NAME ${_export_name})
  endif()
endforeach()

install(TARGETS ${_coring_install_targets}
  EXPORT coringTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT coring_development
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT coring_runtime
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT coring_runtime
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

foreach(_dir IN LISTS _coring_include_dirs)
  if(IS_DIRECTORY "${_dir}")
    install(DIRECTORY "${_dir}"
      DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
      COMPONENT coring_development
      FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
  endif()
endforeach()

install(EXPORT coringTargets
  NAMESPACE coring::
  FILE coringTargets.cmake
  DESTINATION "${CORING_INSTALL_CMAKEDIR}"
  COMPONENT coring_development)

# Every cmake/find-*.cmake defines imported targets the libraries link (guarded by
# if(NOT TARGET ...)); the generated config includes each so consumers get them too.
file(GLOB _coring_find_modules RELATIVE "${PROJECT_SOURCE_DIR}/cmake"
  "${PROJECT_SOURCE_DIR}/cmake/find-*.cmake")
list(SORT _coring_find_modules)
list(JOIN _coring_find_modules " " CORING_CONFIG_FIND_MODULES)
list(TRANSFORM _coring_find_modules PREPEND "${PROJECT_SOURCE_DIR}/cmake/")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/coringConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/coringConfig.cmake"
  INSTALL_DESTINATION "${CORING_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/coringConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)

install(FILES
    "${PROJECT_BINARY_DIR}/coringConfig.cmake"
    "${PROJECT_BINARY_DIR}/coringConfigVersion.cmake"
    ${_coring_find_modules}
  DESTINATION "${CORING_INSTALL_CMAKEDIR}"
  COMPONENT coring_development)

unset(_coring_install_targets)
unset(_coring_include_dirs)
unset(_coring_find_modules)
unset(_target)
unset(_export_name)
unset(_dir)
