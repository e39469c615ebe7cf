# tmtop --report --follow-fork: forked children traced as their own
# processes.  The target is built like the e2e ones (tests/cmake/e2e.cmake:
# no optimisation, no builtins) into the same directory; tests/e2e/follow.py
# checks it with e2e.py's helpers.
find_package(Python3 COMPONENTS Interpreter)
find_package(Threads REQUIRED)

set(FOLLOW_BIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/e2e)
add_executable(follow_fork ${CMAKE_CURRENT_SOURCE_DIR}/programs/follow_fork.c)
target_compile_options(follow_fork PRIVATE -g -O0 -fno-builtin)
target_link_libraries(follow_fork PRIVATE Threads::Threads)
set_target_properties(follow_fork PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${FOLLOW_BIN_DIR})

if(Python3_Interpreter_FOUND)
  foreach(t json without text)
    add_test(NAME follow_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/follow.py
                     --tmtop $<TARGET_FILE:tmtop> --bindir ${FOLLOW_BIN_DIR}
                     --srcdir ${CMAKE_CURRENT_SOURCE_DIR}/programs ${t})
    set_tests_properties(follow_${t} PROPERTIES LABELS e2e TIMEOUT 120)
  endforeach()
endif()
