# The live explorer: unit tests of its model, renderer, scrollback, resolver
# and terminal code (no terminal needed), and end-to-end tests that run tmtop
# in tmux against a program whose allocation phases the test controls.
foreach(t model output resolver screen)
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tui_${t}.c)
    continue()
  endif()
  add_executable(test_tui_${t} unit/test_tui_${t}.c)
  target_link_libraries(test_tui_${t} PRIVATE tm_tui tm_check)
  target_compile_options(test_tui_${t} PRIVATE ${TMTOP_SAN_FLAGS})
  target_link_options(test_tui_${t} PRIVATE ${TMTOP_SAN_FLAGS})
  add_test(NAME tui_${t} COMMAND test_tui_${t})
  set_tests_properties(tui_${t} PROPERTIES LABELS "unit;tui" TIMEOUT 60)
endforeach()

# The controllable target of the tmux tests; built like the e2e programs,
# without optimisation or builtins, so each malloc is a call on its line.
set(TUI_BIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/tui)
add_executable(tui_phases ${CMAKE_CURRENT_SOURCE_DIR}/programs/tui_phases.c)
target_compile_options(tui_phases PRIVATE -g -O0 -fno-builtin)
set_target_properties(tui_phases PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${TUI_BIN_DIR})

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  # follow: tests/programs/follow_fork.c (built by follow.cmake) under
  # --follow-fork, switching between its processes, then its recording.
  foreach(t live snapshot_diff filters keys detail help output exit_status signal quit
            tmtop_signal terminals resize colour write follow one_process)
    add_test(NAME tui_e2e_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tui/tui_e2e.py
                     --tmtop $<TARGET_FILE:tmtop> --phases $<TARGET_FILE:tui_phases>
                     --follow $<TARGET_FILE:follow_fork>
                     --srcdir ${CMAKE_CURRENT_SOURCE_DIR}/programs ${t})
    set_tests_properties(tui_e2e_${t} PROPERTIES LABELS "e2e;tui" SKIP_RETURN_CODE 77
                         TIMEOUT 120)
  endforeach()
endif()
