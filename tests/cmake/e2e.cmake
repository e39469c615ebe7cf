# End-to-end tests: tmtop --report on target programs with known allocations,
# checked by tests/e2e/e2e.py (and against valgrind where it is installed).
# The targets are built without optimisation or builtins so that every
# malloc/free in their source is a real call on its own line.
find_package(Python3 COMPONENTS Interpreter)

set(E2E_BIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/e2e)
set(E2E_SRC_DIR ${CMAKE_CURRENT_SOURCE_DIR}/programs)
add_custom_target(e2e_programs)

function(tm_e2e_program name)
  add_executable(${name} ${ARGN})
  if(name STREQUAL "e2e_cxx")
    target_compile_options(${name} PRIVATE -g -O0)
  else()
    target_compile_options(${name} PRIVATE -g -O0 -fno-builtin)
  endif()
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_BIN_DIR})
  add_dependencies(e2e_programs ${name})
endfunction()

tm_e2e_program(e2e_basic ${E2E_SRC_DIR}/e2e_basic.c)
tm_e2e_program(e2e_sizes ${E2E_SRC_DIR}/e2e_sizes.c)
tm_e2e_program(e2e_multi ${E2E_SRC_DIR}/e2e_multi_main.c ${E2E_SRC_DIR}/e2e_multi_lib.c)
tm_e2e_program(e2e_realloc ${E2E_SRC_DIR}/e2e_realloc.c)
tm_e2e_program(e2e_memalign ${E2E_SRC_DIR}/e2e_memalign.c)
tm_e2e_program(e2e_cxx ${E2E_SRC_DIR}/e2e_cxx.cpp)
tm_e2e_program(e2e_threads ${E2E_SRC_DIR}/e2e_threads.c)
target_link_libraries(e2e_threads PRIVATE Threads::Threads)
tm_e2e_program(e2e_threadchurn ${E2E_SRC_DIR}/e2e_threadchurn.c)
target_link_libraries(e2e_threadchurn PRIVATE Threads::Threads)
tm_e2e_program(e2e_dlopen ${E2E_SRC_DIR}/e2e_dlopen.c)
target_link_libraries(e2e_dlopen PRIVATE ${CMAKE_DL_LIBS})
tm_e2e_program(e2e_exit ${E2E_SRC_DIR}/e2e_exit.c)
tm_e2e_program(e2e_signal ${E2E_SRC_DIR}/e2e_signal.c)
tm_e2e_program(e2e_fork ${E2E_SRC_DIR}/e2e_fork.c)
tm_e2e_program(e2e_deep ${E2E_SRC_DIR}/e2e_deep.c)
tm_e2e_program(e2e_fds ${E2E_SRC_DIR}/e2e_fds.c)

# The frame shapes of the hook's own stack walk: optimised code, unlike the
# programs above (rbp as a general register, realigned stacks).
add_executable(walk_shapes ${E2E_SRC_DIR}/walk_shapes.c)
target_compile_options(walk_shapes PRIVATE -g -O2)
target_link_libraries(walk_shapes PRIVATE Threads::Threads)
set_target_properties(walk_shapes PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_BIN_DIR})
add_dependencies(e2e_programs walk_shapes)

# The library e2e_dlopen loads: e2e_plugin.so, never linked by anyone.
add_library(e2e_plugin MODULE ${E2E_SRC_DIR}/e2e_plugin.c)
target_compile_options(e2e_plugin PRIVATE -g -O0 -fno-builtin)
set_target_properties(e2e_plugin PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${E2E_BIN_DIR})
add_dependencies(e2e_programs e2e_plugin)

if(Python3_Interpreter_FOUND)
  # One CTest test per scenario; `e2e.py --list` names them all.
  foreach(t basic multi realloc memalign cxx threads threadchurn threadchurn_counter dlopen exit_status signal fork deep fds walk
            text_format keys cumulative filters site_options valgrind)
    add_test(NAME e2e_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e.py
                     --tmtop $<TARGET_FILE:tmtop> --bindir ${E2E_BIN_DIR}
                     --srcdir ${E2E_SRC_DIR} ${t})
    set_tests_properties(e2e_${t} PROPERTIES LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 120)
  endforeach()
else()
  message(STATUS "python3 not found: the end-to-end tests (label e2e) are not registered")
endif()
