# Hardening tests (label hardening): threads, signal storms, dlopen races,
# crashes and kills, the target's view of itself, bad command lines, attacks
# on the trace channel, scale, valgrind on tmtop's report path, the
# symbolizer on damaged DWARF, and short libFuzzer runs of the decoders.
# tests/hardening/hard.py drives the end-to-end ones (one CTest test each).
find_package(Python3 COMPONENTS Interpreter)

set(HARD_BIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/hard)
set(HARD_SRC_DIR ${CMAKE_CURRENT_SOURCE_DIR}/programs)
add_custom_target(hard_programs)

# Targets are built like the e2e ones: no optimisation, no builtins, so that
# every malloc in the source is a real call on its own line.
function(tm_hard_program name)
  add_executable(${name} ${ARGN})
  target_compile_options(${name} PRIVATE -g -O0 -fno-builtin)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${HARD_BIN_DIR})
  add_dependencies(hard_programs ${name})
endfunction()

tm_hard_program(hard_threads ${HARD_SRC_DIR}/hard_threads.c)
target_link_libraries(hard_threads PRIVATE Threads::Threads)
tm_hard_program(hard_sigalrm ${HARD_SRC_DIR}/hard_sigalrm.c)
target_link_libraries(hard_sigalrm PRIVATE Threads::Threads)
tm_hard_program(hard_dlopen ${HARD_SRC_DIR}/hard_dlopen.c)
target_link_libraries(hard_dlopen PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
tm_hard_program(hard_crash ${HARD_SRC_DIR}/hard_crash.c)
tm_hard_program(hard_probe ${HARD_SRC_DIR}/hard_probe.c)
tm_hard_program(hard_scale ${HARD_SRC_DIR}/hard_scale.c)
# The injector speaks the wire format itself (never through the hook).
tm_hard_program(hard_inject ${HARD_SRC_DIR}/hard_inject.c ${PROJECT_SOURCE_DIR}/src/wire/wire.c
                ${PROJECT_SOURCE_DIR}/src/common/common.c)
target_include_directories(hard_inject PRIVATE ${PROJECT_SOURCE_DIR}/src/wire
                                               ${PROJECT_SOURCE_DIR}/src/common)
target_link_libraries(hard_inject PRIVATE m)
add_library(hard_plugin MODULE ${HARD_SRC_DIR}/hard_plugin.c)
target_compile_options(hard_plugin PRIVATE -g -O0 -fno-builtin)
set_target_properties(hard_plugin PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${HARD_BIN_DIR})
add_dependencies(hard_programs hard_plugin)
if(TMTOP_HAVE_STATIC_LIBC)
  tm_hard_program(hard_static ${HARD_SRC_DIR}/hard_probe.c)
  target_link_options(hard_static PRIVATE -static)
endif()
add_dependencies(hard_programs tmtop tmtop-hook)

if(Python3_Interpreter_FOUND)
  find_program(HARD_VALGRIND valgrind)
  foreach(t threads sigalrm dlopen crash_segv crash_abort crash_kill untouched badinput inject
            scale valgrind)
    add_test(NAME hard_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/hardening/hard.py
                     --tmtop $<TARGET_FILE:tmtop> --bindir ${HARD_BIN_DIR}
                     --srcdir ${HARD_SRC_DIR} ${t})
    set_tests_properties(hard_${t} PROPERTIES LABELS hardening SKIP_RETURN_CODE 77 TIMEOUT 60)
  endforeach()
  # The target's first open() returns 3: libunwind's validation pipe, opened
  # when the hook initialises libunwind, is kept at high numbers.
  add_test(NAME hard_untouched_fds
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/hardening/hard.py
                   --tmtop $<TARGET_FILE:tmtop> --bindir ${HARD_BIN_DIR} --srcdir ${HARD_SRC_DIR}
                   untouched_fds)
  set_tests_properties(hard_untouched_fds PROPERTIES LABELS hardening TIMEOUT 60)
else()
  message(STATUS "python3 not found: the hardening tests are not registered")
endif()

# The symbolizer on hundreds of copies of a fixture with random bytes flipped
# in .debug_info, .debug_line, .debug_abbrev and .debug_str.
add_executable(test_symbolize_fuzz unit/test_symbolize_fuzz.c)
target_include_directories(test_symbolize_fuzz PRIVATE ${LIBELF_INCLUDE_DIR})
target_link_libraries(test_symbolize_fuzz PRIVATE tm_symbolize tm_check ${LIBELF_LIBRARY})
target_compile_options(test_symbolize_fuzz PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_symbolize_fuzz PRIVATE ${TMTOP_SAN_FLAGS})
add_dependencies(test_symbolize_fuzz sym_fixtures)
add_test(NAME symbolize_fuzz COMMAND test_symbolize_fuzz ${CMAKE_CURRENT_BINARY_DIR}/sym/sym_inline
                                     ${CMAKE_CURRENT_BINARY_DIR}/sym/sym_cxx)
set_tests_properties(symbolize_fuzz PROPERTIES LABELS "hardening;unit" TIMEOUT 120)

# libFuzzer smoke runs: tests/fuzz/run builds the harnesses with clang itself
# (the project's compiler may be gcc) and exits 77 without clang/libFuzzer.
add_test(NAME fuzz_smoke
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run --out ${CMAKE_CURRENT_BINARY_DIR}/fuzz
                 --runs 20000)
set_tests_properties(fuzz_smoke PROPERTIES LABELS hardening SKIP_RETURN_CODE 77 TIMEOUT 120)
