# Finds libevent through pkg-config: the library with its extras (evhttp,
# for the inspection endpoint: libevent.pc) and its pthreads glue (for io/:
# libevent_pthreads.pc). Defines Libevent::Libevent, which links both.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_LIBEVENT QUIET libevent)
  pkg_check_modules(PC_EVENT_PTHREADS QUIET libevent_pthreads)
endif()
find_path(LIBEVENT_INCLUDE_DIR event2/http.h HINTS ${PC_LIBEVENT_INCLUDE_DIRS})
find_library(LIBEVENT_LIBRARY NAMES event HINTS ${PC_LIBEVENT_LIBRARY_DIRS})
find_library(LIBEVENT_PTHREADS_LIBRARY NAMES event_pthreads
  HINTS ${PC_EVENT_PTHREADS_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libevent
  REQUIRED_VARS LIBEVENT_LIBRARY LIBEVENT_PTHREADS_LIBRARY LIBEVENT_INCLUDE_DIR
  VERSION_VAR PC_LIBEVENT_VERSION)
if(Libevent_FOUND AND NOT TARGET Libevent::Libevent)
  add_library(Libevent::event UNKNOWN IMPORTED)
  set_target_properties(Libevent::event PROPERTIES
    IMPORTED_LOCATION "${LIBEVENT_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LIBEVENT_INCLUDE_DIR}")
  add_library(Libevent::pthreads UNKNOWN IMPORTED)
  set_target_properties(Libevent::pthreads PROPERTIES
    IMPORTED_LOCATION "${LIBEVENT_PTHREADS_LIBRARY}"
    INTERFACE_LINK_LIBRARIES Libevent::event)
  add_library(Libevent::Libevent INTERFACE IMPORTED)
  set_target_properties(Libevent::Libevent PROPERTIES
    INTERFACE_LINK_LIBRARIES "Libevent::pthreads;Libevent::event")
endif()
mark_as_advanced(LIBEVENT_INCLUDE_DIR LIBEVENT_LIBRARY
                 LIBEVENT_PTHREADS_LIBRARY)
