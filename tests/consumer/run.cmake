# Installs the build tree into a scratch prefix, builds tests/consumer
# against it (CMake package and pkg-config), and runs both programs.
set(prefix ${BINARY_DIR}/consumer-prefix)
set(build ${BINARY_DIR}/consumer-build)
file(REMOVE_RECURSE ${prefix} ${build})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix})
set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig:${prefix}/lib/x86_64-linux-gnu/pkgconfig:$ENV{PKG_CONFIG_PATH}")
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${build}
    -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${build})
run(${build}/consumer_cmake)
run(${build}/consumer_pkgconfig)

# Packaging: no leaked compiler flags, no unexpanded configure choices.
execute_process(COMMAND pkg-config --cflags troupe OUTPUT_VARIABLE cflags
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR cflags MATCHES "-D")
  message(FATAL_ERROR "pkg-config --cflags troupe: '${cflags}' (${rc})")
endif()
file(GLOB_RECURSE configs ${prefix}/*/troupeConfig.cmake)
if(NOT configs)
  message(FATAL_ERROR "no troupeConfig.cmake installed under ${prefix}")
endif()
foreach(c ${configs})
  file(READ ${c} text)
  if(text MATCHES "STREQUAL")
    message(FATAL_ERROR "${c} still holds a configure-time test")
  endif()
endforeach()
