# SPDX-License-Identifier: Apache-2.0
# Debian's abseil CMake package names its shared objects; a static link takes the archives
# Debian ships beside them (libabsl_X.so.N -> libabsl_X.a).
get_property(imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(target IN LISTS imported)
  if(NOT target MATCHES "^absl::")
    continue()
  endif()
  get_target_property(type ${target} TYPE)
  if(NOT type STREQUAL "SHARED_LIBRARY")
    continue()
  endif()
  get_target_property(shared ${target} IMPORTED_LOCATION_NONE)
  string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${shared}")
  if(NOT EXISTS "${archive}")
    message(FATAL_ERROR "portwatch: static build needs ${archive} (libabsl-dev)")
  endif()
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION_NONE "${archive}")
endforeach()
