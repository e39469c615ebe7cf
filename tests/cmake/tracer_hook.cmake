# The hook's test: tests/unit/test_hook.c listens like tmtop would, runs the
# hook_* programs under libtmtop-hook.so and checks every record they send.
# The programs are built without optimisation or builtins, so that every
# allocation call in their source is a real call.
set(HOOK_TEST_DIR ${CMAKE_BINARY_DIR}/hook-test)
set(HOOK_SRC_DIR ${CMAKE_CURRENT_SOURCE_DIR}/programs)

set(HOOK_PROGRAMS hook_basic hook_fork hook_exec hook_output hook_threads hook_fdlost
  hook_dlopen hook_fdreuse)
foreach(p ${HOOK_PROGRAMS})
  add_executable(${p} ${HOOK_SRC_DIR}/${p}.c)
  target_compile_options(${p} PRIVATE -g -O0 -fno-builtin)
  set_target_properties(${p} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${HOOK_TEST_DIR})
endforeach()
add_executable(hook_cxx ${HOOK_SRC_DIR}/hook_cxx.cpp)
target_compile_options(hook_cxx PRIVATE -g -O0 -fno-builtin)
set_target_properties(hook_cxx PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${HOOK_TEST_DIR})
list(APPEND HOOK_PROGRAMS hook_cxx)
target_link_libraries(hook_threads PRIVATE Threads::Threads)
# Frames without CFI: libunwind validates addresses through its pipe there.
target_compile_options(hook_fdreuse PRIVATE -fno-asynchronous-unwind-tables -fno-unwind-tables
                                            -fno-omit-frame-pointer)
target_link_libraries(hook_dlopen PRIVATE ${CMAKE_DL_LIBS})

# hook_dlopen finds the plugin by its bare name through its RUNPATH only.
add_library(hook_plugin MODULE ${HOOK_SRC_DIR}/hook_plugin.c)
target_compile_options(hook_plugin PRIVATE -g -O0 -fno-builtin)
set_target_properties(hook_plugin PROPERTIES PREFIX "lib"
  LIBRARY_OUTPUT_DIRECTORY ${HOOK_TEST_DIR}/hook-plugins)
set_target_properties(hook_dlopen PROPERTIES BUILD_RPATH "\$ORIGIN/hook-plugins")
target_link_options(hook_dlopen PRIVATE -Wl,--enable-new-dtags)

# Preloaded after the hook: its constructor allocates before the hook's runs.
add_library(hook_early MODULE ${HOOK_SRC_DIR}/hook_early.c)
target_compile_options(hook_early PRIVATE -g -O0 -fno-builtin)
set_target_properties(hook_early PROPERTIES PREFIX "lib" LIBRARY_OUTPUT_DIRECTORY ${HOOK_TEST_DIR})

add_executable(test_hook unit/test_hook.c)
target_link_libraries(test_hook PRIVATE tm_wire tm_common tm_check)
target_compile_options(test_hook PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_hook PRIVATE ${TMTOP_SAN_FLAGS})
target_compile_definitions(test_hook PRIVATE HOOK_LIB="$<TARGET_FILE:tmtop-hook>"
  HOOK_DIR="${HOOK_TEST_DIR}")
add_dependencies(test_hook tmtop-hook hook_plugin hook_early ${HOOK_PROGRAMS})
add_test(NAME hook COMMAND test_hook)
set_tests_properties(hook PROPERTIES LABELS unit TIMEOUT 180)

# The hook's own stack walk on stacks built by hand.  Built like the hook:
# no sanitizers (it reads stack words no instrumented code owns).
add_executable(test_walk unit/test_walk.c ${PROJECT_SOURCE_DIR}/src/tracer/hook_walk.c)
target_include_directories(test_walk PRIVATE ${PROJECT_SOURCE_DIR}/src/tracer ${PROJECT_SOURCE_DIR}/src/common)
target_compile_definitions(test_walk PRIVATE _GNU_SOURCE)
target_link_libraries(test_walk PRIVATE tm_check ${CMAKE_DL_LIBS} Threads::Threads)
add_test(NAME walk COMMAND test_walk)
set_tests_properties(walk PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 60)
