# Finds jemalloc through pkg-config (jemalloc.pc); defines Jemalloc::Jemalloc.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_JEMALLOC QUIET jemalloc)
endif()
find_path(JEMALLOC_INCLUDE_DIR jemalloc/jemalloc.h
          HINTS ${PC_JEMALLOC_INCLUDE_DIRS})
find_library(JEMALLOC_LIBRARY NAMES jemalloc HINTS ${PC_JEMALLOC_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Jemalloc
  REQUIRED_VARS JEMALLOC_LIBRARY JEMALLOC_INCLUDE_DIR
  VERSION_VAR PC_JEMALLOC_VERSION)
if(Jemalloc_FOUND AND NOT TARGET Jemalloc::Jemalloc)
  add_library(Jemalloc::Jemalloc UNKNOWN IMPORTED)
  set_target_properties(Jemalloc::Jemalloc PROPERTIES
    IMPORTED_LOCATION "${JEMALLOC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${JEMALLOC_INCLUDE_DIR}")
endif()
mark_as_advanced(JEMALLOC_INCLUDE_DIR JEMALLOC_LIBRARY)
