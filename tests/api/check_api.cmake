# Checks the API conventions that a machine can check (cmake -P, so that it
# needs nothing CMake does not have). Run with -DSOURCE_DIR=<repo>.
#
# - every public function (a TR_API declaration, or a static inline one in
#   a header) has a /** ... */ block right before it;
# - every public function is named in the guide (docs/guide.md);
# - every timeout parameter is a `tr_timeout timeout`;
# - a function that takes a tr_timeout and waits says so: its name ends in
#   _wait (those that only arm a deadline or end the system are named
#   below, with why);
# - error codes: one name and one value each.

cmake_minimum_required(VERSION 3.20)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "check_api.cmake: pass -DSOURCE_DIR=<repo>")
endif()

# tr_call arms a deadline but never waits (its reply comes as a message);
# tr_system_shutdown ends the system, giving its actors up to `timeout`;
# tr_io_connect(_unix) returns at once and arms a deadline for the connect.
set(deadline_not_wait tr_call tr_system_shutdown tr_io_connect
    tr_io_connect_unix)

file(GLOB headers ${SOURCE_DIR}/include/troupe/*.h)
file(READ ${SOURCE_DIR}/docs/guide.md guide)
set(problems "")
set(count 0)

foreach(h ${headers})
  file(READ ${h} text)
  get_filename_component(hname ${h} NAME)
  # Exported declarations, and the static inline functions a header
  # defines (up to the opening brace).
  string(REGEX MATCHALL "TR_API[^;{]*;|static inline[^;{]*{" decls "${text}")
  foreach(d ${decls})
    if(NOT d MATCHES "(tr_[a-z0-9_]+)\\(")
      continue() # a variable (e.g. the supervisor behaviour)
    endif()
    set(fn ${CMAKE_MATCH_1})
    math(EXPR count "${count} + 1")

    # The comment before the declaration.
    string(FIND "${text}" "${d}" at)
    string(SUBSTRING "${text}" 0 ${at} before)
    string(STRIP "${before}" before)
    string(LENGTH "${before}" blen)
    set(documented FALSE)
    if(blen GREATER 2)
      math(EXPR tail "${blen} - 2")
      string(SUBSTRING "${before}" ${tail} 2 last)
      if(last STREQUAL "*/")
        string(FIND "${before}" "/*" open REVERSE)
        string(SUBSTRING "${before}" ${open} 3 opener)
        if(opener STREQUAL "/**")
          set(documented TRUE)
        endif()
      endif()
    endif()
    if(NOT documented)
      list(APPEND problems "${hname}: ${fn} has no /** */ documentation")
    endif()

    if(NOT guide MATCHES "[^a-z0-9_]${fn}[^a-z0-9_]")
      list(APPEND problems "${hname}: ${fn} is never named in docs/guide.md")
    endif()

    # Takes, not returns: only the parameters count (tr_ms returns one).
    string(FIND "${d}" "${fn}(" popen)
    string(SUBSTRING "${d}" ${popen} -1 dparams)
    if(dparams MATCHES "[a-z0-9_]+ \\*?[a-z_]*timeout[a-z_]*")
      string(REGEX MATCHALL "[a-z0-9_]+ \\*?[a-z_]*timeout[a-z_]*" params
             "${dparams}")
      foreach(p ${params})
        if(NOT p STREQUAL "tr_timeout timeout")
          list(APPEND problems
               "${hname}: ${fn} takes '${p}' (a timeout is 'tr_timeout timeout')")
        endif()
      endforeach()
    endif()
    if(dparams MATCHES "tr_timeout" AND NOT fn MATCHES "_wait$" AND
       NOT fn IN_LIST deadline_not_wait)
      list(APPEND problems
           "${hname}: ${fn} takes a tr_timeout but its name does not end in _wait")
    endif()
  endforeach()
endforeach()

# Error codes: one name and one value each.
file(READ ${SOURCE_DIR}/include/troupe/error.h errors)
string(REGEX MATCHALL "X\\(([A-Z]+), (-?[0-9]+)," entries "${errors}")
set(names "")
set(values "")
foreach(e ${entries})
  string(REGEX MATCH "X\\(([A-Z]+), (-?[0-9]+)," _ "${e}")
  if(CMAKE_MATCH_1 IN_LIST names)
    list(APPEND problems "error.h: ${CMAKE_MATCH_1} defined twice")
  endif()
  if(CMAKE_MATCH_2 IN_LIST values)
    list(APPEND problems "error.h: value ${CMAKE_MATCH_2} used twice")
  endif()
  list(APPEND names ${CMAKE_MATCH_1})
  list(APPEND values ${CMAKE_MATCH_2})
endforeach()

if(count LESS 50)
  list(APPEND problems "found only ${count} public functions: the scan broke")
endif()
if(problems)
  list(JOIN problems "\n  " text)
  message(FATAL_ERROR "API conventions broken:\n  ${text}")
endif()
message(STATUS "API conventions hold for ${count} public functions")
