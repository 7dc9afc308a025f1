# Finds libevent's core and pthreads libraries through pkg-config
# (libevent_core.pc, libevent_pthreads.pc); defines Libevent::Libevent.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_EVENT_CORE QUIET libevent_core)
  pkg_check_modules(PC_EVENT_PTHREADS QUIET libevent_pthreads)
endif()
find_path(LIBEVENT_INCLUDE_DIR event2/event.h
  HINTS ${PC_EVENT_CORE_INCLUDE_DIRS})
find_library(LIBEVENT_CORE_LIBRARY NAMES event_core
  HINTS ${PC_EVENT_CORE_LIBRARY_DIRS})
find_library(LIBEVENT_PTHREADS_LIBRARY NAMES event_pthreads
  HINTS ${PC_EVENT_PTHREADS_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libevent
  REQUIRED_VARS LIBEVENT_CORE_LIBRARY LIBEVENT_PTHREADS_LIBRARY
                LIBEVENT_INCLUDE_DIR
  VERSION_VAR PC_EVENT_CORE_VERSION)
if(Libevent_FOUND AND NOT TARGET Libevent::Libevent)
  add_library(Libevent::core UNKNOWN IMPORTED)
  set_target_properties(Libevent::core PROPERTIES
    IMPORTED_LOCATION "${LIBEVENT_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LIBEVENT_INCLUDE_DIR}")
  add_library(Libevent::pthreads UNKNOWN IMPORTED)
  set_target_properties(Libevent::pthreads PROPERTIES
    IMPORTED_LOCATION "${LIBEVENT_PTHREADS_LIBRARY}"
    INTERFACE_LINK_LIBRARIES Libevent::core)
  add_library(Libevent::Libevent INTERFACE IMPORTED)
  set_target_properties(Libevent::Libevent PROPERTIES
    INTERFACE_LINK_LIBRARIES "Libevent::pthreads;Libevent::core")
endif()
mark_as_advanced(LIBEVENT_INCLUDE_DIR LIBEVENT_CORE_LIBRARY
                 LIBEVENT_PTHREADS_LIBRARY)
