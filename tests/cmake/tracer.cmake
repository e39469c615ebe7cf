# The launcher's test.  It runs from its own folder, launcher-test/, where a
# copy of a do-nothing shared library plays libtmtop-hook.so: the real hook is
# not needed (the fake target speaks the wire protocol itself), and
# tm_tracer_find_hook must find the copy beside the test executable.
set(LAUNCH_DIR ${CMAKE_BINARY_DIR}/launcher-test)

add_library(launch_nop SHARED ${CMAKE_CURRENT_SOURCE_DIR}/programs/launch_nop.c)
set_target_properties(launch_nop PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${LAUNCH_DIR})
add_custom_command(TARGET launch_nop POST_BUILD
  COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:launch_nop> ${LAUNCH_DIR}/libtmtop-hook.so)

# The fake target: never built with sanitizers (it runs under LD_PRELOAD).
add_executable(launch_fake ${CMAKE_CURRENT_SOURCE_DIR}/programs/launch_fake.c
  ${PROJECT_SOURCE_DIR}/src/wire/wire.c ${PROJECT_SOURCE_DIR}/src/common/common.c)
target_include_directories(launch_fake PRIVATE ${PROJECT_SOURCE_DIR}/src/wire
  ${PROJECT_SOURCE_DIR}/src/common)
target_link_libraries(launch_fake PRIVATE m ${CMAKE_DL_LIBS})
set_target_properties(launch_fake PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${LAUNCH_DIR})

# Static programs, when the C library's archive is installed (libc6-dev).
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -static)
check_c_source_compiles("int main(void) { return 0; }" TMTOP_HAVE_STATIC_LIBC)
set(CMAKE_REQUIRED_LINK_OPTIONS -static-pie)
set(CMAKE_REQUIRED_FLAGS -fPIE)
check_c_source_compiles("int main(void) { return 0; }" TMTOP_HAVE_STATIC_PIE)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
unset(CMAKE_REQUIRED_FLAGS)
set(LAUNCH_STATIC "")
set(LAUNCH_STATIC_PIE "")
if(TMTOP_HAVE_STATIC_LIBC)
  add_executable(launch_static ${CMAKE_CURRENT_SOURCE_DIR}/programs/launch_static.c)
  target_link_options(launch_static PRIVATE -static)
  set_target_properties(launch_static PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${LAUNCH_DIR})
  set(LAUNCH_STATIC $<TARGET_FILE:launch_static>)
endif()
if(TMTOP_HAVE_STATIC_PIE)
  add_executable(launch_static_pie ${CMAKE_CURRENT_SOURCE_DIR}/programs/launch_static.c)
  set_target_properties(launch_static_pie PROPERTIES POSITION_INDEPENDENT_CODE ON
    RUNTIME_OUTPUT_DIRECTORY ${LAUNCH_DIR})
  target_link_options(launch_static_pie PRIVATE -static-pie)
  set(LAUNCH_STATIC_PIE $<TARGET_FILE:launch_static_pie>)
endif()

add_executable(test_launcher ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_launcher.c)
target_link_libraries(test_launcher PRIVATE tm_tracer tm_check)
target_compile_options(test_launcher PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_launcher PRIVATE ${TMTOP_SAN_FLAGS})
set_target_properties(test_launcher PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${LAUNCH_DIR})
target_compile_definitions(test_launcher PRIVATE
  LAUNCH_DIR="${LAUNCH_DIR}"
  LAUNCH_FAKE="$<TARGET_FILE:launch_fake>"
  LAUNCH_NOP="$<TARGET_FILE:launch_nop>"
  LAUNCH_STATIC="${LAUNCH_STATIC}"
  LAUNCH_STATIC_PIE="${LAUNCH_STATIC_PIE}")
add_dependencies(test_launcher launch_fake launch_nop)
if(TMTOP_HAVE_STATIC_LIBC)
  add_dependencies(test_launcher launch_static)
endif()
if(TMTOP_HAVE_STATIC_PIE)
  add_dependencies(test_launcher launch_static_pie)
endif()

add_test(NAME launcher COMMAND test_launcher)
set_tests_properties(launcher PROPERTIES WORKING_DIRECTORY ${LAUNCH_DIR} TIMEOUT 180
  LABELS "tracer")
