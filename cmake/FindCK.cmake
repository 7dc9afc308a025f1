# Finds Concurrency Kit through pkg-config (ck.pc); defines CK::CK.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_CK QUIET ck)
endif()
find_path(CK_INCLUDE_DIR ck_pr.h HINTS ${PC_CK_INCLUDE_DIRS})
find_library(CK_LIBRARY NAMES ck HINTS ${PC_CK_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CK
  REQUIRED_VARS CK_LIBRARY CK_INCLUDE_DIR
  VERSION_VAR PC_CK_VERSION)
if(CK_FOUND AND NOT TARGET CK::CK)
  add_library(CK::CK UNKNOWN IMPORTED)
  set_target_properties(CK::CK PROPERTIES
    IMPORTED_LOCATION "${CK_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CK_INCLUDE_DIR}")
endif()
mark_as_advanced(CK_INCLUDE_DIR CK_LIBRARY)
