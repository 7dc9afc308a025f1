# A timeout is a type the compiler checks (cmake -P). Compiles
# timeout_swap.c with the C compiler: the right order must compile, and
# each swapped call must fail to, naming tr_timeout in its error. Plain
# warnings, no -Werror: the point is a hard error, which an integer
# timeout (the old `typedef int64_t tr_timeout`) never gave.
# Run with -DSOURCE_DIR=<repo> -DC_COMPILER=<cc> [-DINCLUDE_DIR=<dir>].

cmake_minimum_required(VERSION 3.20)

if(NOT SOURCE_DIR OR NOT C_COMPILER)
  message(FATAL_ERROR
          "check_timeout_type.cmake: pass -DSOURCE_DIR=<repo> -DC_COMPILER=<cc>")
endif()
if(NOT INCLUDE_DIR)
  set(INCLUDE_DIR ${SOURCE_DIR}/include)
endif()
set(src ${SOURCE_DIR}/tests/api/timeout_swap.c)

function(compile define out_rc out_log)
  set(args -std=c11 -Wall -Wextra -fsyntax-only -I${INCLUDE_DIR})
  if(define)
    list(APPEND args -D${define})
  endif()
  execute_process(COMMAND ${C_COMPILER} ${args} ${src}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_log} "${log}" PARENT_SCOPE)
endfunction()

set(problems "")
compile("" rc log)
if(NOT rc EQUAL 0)
  list(APPEND problems "the right argument order does not compile:\n${log}")
endif()
foreach(swap TR_SWAP_SEND TR_SWAP_RECV TR_SWAP_CALL)
  compile(${swap} rc log)
  if(rc EQUAL 0)
    list(APPEND problems "${swap}: a swapped timeout compiles")
  elseif(NOT log MATCHES "tr_timeout")
    list(APPEND problems "${swap}: fails, but not over tr_timeout:\n${log}")
  endif()
endforeach()

if(problems)
  list(JOIN problems "\n" text)
  message(FATAL_ERROR "timeout type:\n${text}")
endif()
message(STATUS "timeout type: the right order compiles, 3 swaps do not")
