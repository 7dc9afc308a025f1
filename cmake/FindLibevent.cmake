# Finds libevent through pkg-config (libevent.pc); defines Libevent::Libevent
# (the core and extra library: events and evhttp).
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_LIBEVENT QUIET libevent)
endif()
find_path(LIBEVENT_INCLUDE_DIR event2/http.h HINTS ${PC_LIBEVENT_INCLUDE_DIRS})
find_library(LIBEVENT_LIBRARY NAMES event HINTS ${PC_LIBEVENT_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libevent
  REQUIRED_VARS LIBEVENT_LIBRARY LIBEVENT_INCLUDE_DIR
  VERSION_VAR PC_LIBEVENT_VERSION)
if(Libevent_FOUND AND NOT TARGET Libevent::Libevent)
  add_library(Libevent::Libevent UNKNOWN IMPORTED)
  set_target_properties(Libevent::Libevent PROPERTIES
    IMPORTED_LOCATION "${LIBEVENT_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LIBEVENT_INCLUDE_DIR}")
endif()
mark_as_advanced(LIBEVENT_INCLUDE_DIR LIBEVENT_LIBRARY)
