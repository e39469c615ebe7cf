# Symbolizer tests.  The fixture programs are built with fixed flags (-O2 -g,
# whatever the build type) by custom commands, together with derived copies:
# stripped, and split into a stripped binary + .gnu_debuglink'ed debug file.
# test_symbolize compares tm_sym_resolve with addr2line on them (and with
# llvm-symbolizer on the clang builds when clang is installed).
set(SYM_FIX_DIR ${CMAKE_CURRENT_BINARY_DIR}/sym)
set(SYM_SRC_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
file(MAKE_DIRECTORY ${SYM_FIX_DIR}/split/.debug)

find_program(SYM_OBJCOPY objcopy REQUIRED)
find_program(SYM_STRIP strip REQUIRED)
find_program(SYM_ADDR2LINE addr2line REQUIRED)
find_program(SYM_CLANG clang)
find_program(SYM_CLANGXX clang++)
find_program(SYM_LLVM_SYMBOLIZER llvm-symbolizer)
find_program(SYM_VALGRIND valgrind)

set(SYM_INLINE_SRC ${SYM_SRC_DIR}/sym_inline.c)
set(SYM_CXX_SRC ${SYM_SRC_DIR}/sym_cxx.cpp)
# -rdynamic puts the fixture's functions in .dynsym, which the stripped copy
# keeps.
set(SYM_OUTPUTS)
function(sym_fixture out compiler src)
  add_custom_command(OUTPUT ${SYM_FIX_DIR}/${out}
    COMMAND ${compiler} ${ARGN} -rdynamic -o ${SYM_FIX_DIR}/${out} ${src}
    DEPENDS ${src} VERBATIM)
  set(SYM_OUTPUTS ${SYM_OUTPUTS} ${SYM_FIX_DIR}/${out} PARENT_SCOPE)
endfunction()

sym_fixture(sym_inline ${CMAKE_C_COMPILER} ${SYM_INLINE_SRC} -O2 -g)
sym_fixture(sym_inline_dw4 ${CMAKE_C_COMPILER} ${SYM_INLINE_SRC} -O2 -gdwarf-4)
sym_fixture(sym_cxx ${CMAKE_CXX_COMPILER} ${SYM_CXX_SRC} -O2 -g)
sym_fixture(sym_cxx_dw4 ${CMAKE_CXX_COMPILER} ${SYM_CXX_SRC} -O2 -gdwarf-4)
# type units in .debug_info: the symbolizer's own DWARF reader leaves them
# to libdwarf (test_symbolize_dies)
sym_fixture(sym_cxx_types ${CMAKE_CXX_COMPILER} ${SYM_CXX_SRC} -O2 -g -fdebug-types-section)
set(SYM_LLVM_REF "")
if(SYM_CLANG AND SYM_CLANGXX AND SYM_LLVM_SYMBOLIZER)
  sym_fixture(sym_inline_clang ${SYM_CLANG} ${SYM_INLINE_SRC} -O2 -g -Wl,--build-id)
  sym_fixture(sym_cxx_clang ${SYM_CLANGXX} ${SYM_CXX_SRC} -O2 -g -Wl,--build-id)
  set(SYM_LLVM_REF ${SYM_LLVM_SYMBOLIZER})
endif()

add_custom_command(OUTPUT ${SYM_FIX_DIR}/sym_inline.stripped
  COMMAND ${SYM_STRIP} --strip-all -o ${SYM_FIX_DIR}/sym_inline.stripped
          ${SYM_FIX_DIR}/sym_inline
  DEPENDS ${SYM_FIX_DIR}/sym_inline VERBATIM)
add_custom_command(
  OUTPUT ${SYM_FIX_DIR}/split/sym_inline ${SYM_FIX_DIR}/split/.debug/sym_inline.debug
  COMMAND ${SYM_OBJCOPY} --only-keep-debug ${SYM_FIX_DIR}/sym_inline
          ${SYM_FIX_DIR}/split/.debug/sym_inline.debug
  COMMAND ${SYM_STRIP} --strip-all -o ${SYM_FIX_DIR}/split/sym_inline ${SYM_FIX_DIR}/sym_inline
  COMMAND ${SYM_OBJCOPY} --add-gnu-debuglink=${SYM_FIX_DIR}/split/.debug/sym_inline.debug
          ${SYM_FIX_DIR}/split/sym_inline
  DEPENDS ${SYM_FIX_DIR}/sym_inline VERBATIM)
add_custom_target(sym_fixtures DEPENDS ${SYM_OUTPUTS} ${SYM_FIX_DIR}/sym_inline.stripped
                                       ${SYM_FIX_DIR}/split/sym_inline)

add_executable(test_symbolize unit/test_symbolize.c)
target_include_directories(test_symbolize PRIVATE ${LIBELF_INCLUDE_DIR})
target_link_libraries(test_symbolize PRIVATE tm_symbolize tm_check ${LIBELF_LIBRARY}
                                             ${CMAKE_DL_LIBS})
target_compile_options(test_symbolize PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_symbolize PRIVATE ${TMTOP_SAN_FLAGS})
add_dependencies(test_symbolize sym_fixtures)
add_test(NAME symbolize
         COMMAND test_symbolize ${SYM_FIX_DIR} ${SYM_SRC_DIR} "${SYM_LLVM_REF}")
set_tests_properties(symbolize PROPERTIES LABELS unit TIMEOUT 300)

# The load without libdwarf (dies.c, dwarf.c's line and file tables) and the
# mixed one against the load with libdwarf alone: identical tables for every
# fixture (gcc DWARF 5 and 4, C and C++, clang when installed, a separate
# debug file, e2e's -O2 program), glibc's debug file, and a file with type
# units, which must fall back to libdwarf.
set(SYM_DIES_FILES ${SYM_FIX_DIR}/sym_inline ${SYM_FIX_DIR}/sym_inline_dw4 ${SYM_FIX_DIR}/sym_cxx
                   ${SYM_FIX_DIR}/sym_cxx_dw4 ${SYM_FIX_DIR}/split/.debug/sym_inline.debug)
if(SYM_LLVM_REF)
  list(APPEND SYM_DIES_FILES ${SYM_FIX_DIR}/sym_inline_clang ${SYM_FIX_DIR}/sym_cxx_clang)
endif()
list(APPEND SYM_DIES_FILES ${SYM_FIX_DIR}/sym_e2e_opt --fallback ${SYM_FIX_DIR}/sym_cxx_types)
add_executable(test_symbolize_dies unit/test_symbolize_dies.c)
target_include_directories(test_symbolize_dies PRIVATE ${LIBELF_INCLUDE_DIR})
target_link_libraries(test_symbolize_dies PRIVATE tm_symbolize tm_check ${LIBELF_LIBRARY})
target_compile_options(test_symbolize_dies PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_symbolize_dies PRIVATE ${TMTOP_SAN_FLAGS})
add_dependencies(test_symbolize_dies sym_fixtures sym_e2e_programs)
add_test(NAME symbolize_dies COMMAND test_symbolize_dies ${SYM_DIES_FILES})
set_tests_properties(symbolize_dies PROPERTIES LABELS unit TIMEOUT 300)
# The reader runs in forked children in tmtop, where valgrind does not look:
# here it runs in the test's own process, corrupt copies included.
if(SYM_VALGRIND AND NOT TMTOP_SANITIZE)
  add_test(NAME symbolize_dies_valgrind
           COMMAND ${SYM_VALGRIND} --error-exitcode=99 --leak-check=full
                   --errors-for-leak-kinds=definite,indirect
                   $<TARGET_FILE:test_symbolize_dies> ${SYM_DIES_FILES})
  set_tests_properties(symbolize_dies_valgrind PROPERTIES LABELS "unit;valgrind" TIMEOUT 900)
endif()

# The same test under valgrind: no invalid access, no leak in tmtop's process
# (libdwarf's allocation tree is off, so every DIE and list is freed by hand).
# The forked DWARF-loading children are silenced: fed the corrupt copies,
# libdwarf itself leaks an error record there.  A child valgrind finds fault
# with still exits 99, its tables are discarded, and the strict addr2line
# comparisons fail, so the clean loads stay checked.
if(SYM_VALGRIND AND NOT TMTOP_SANITIZE)
  add_test(NAME symbolize_valgrind
           COMMAND ${SYM_VALGRIND} --error-exitcode=99 --leak-check=full
                   --errors-for-leak-kinds=definite,indirect --child-silent-after-fork=yes
                   $<TARGET_FILE:test_symbolize> ${SYM_FIX_DIR} ${SYM_SRC_DIR}
                   "${SYM_LLVM_REF}")
  set_tests_properties(symbolize_valgrind PROPERTIES LABELS "unit;valgrind" TIMEOUT 900)
endif()

# End to end on optimised code: tmtop --report --json on sym_e2e_opt (built
# -O2 -g like the fixtures): the site of an allocation inside an inlined
# function and of std::vector / std::string growth is the user's marked
# line, and the traceback frames agree with addr2line -f -i -C.
find_package(Python3 COMPONENTS Interpreter)
find_program(SYM_NM nm REQUIRED)
set(SYM_E2E_SRC ${CMAKE_CURRENT_SOURCE_DIR}/programs/sym_e2e_opt.cpp)
add_custom_command(OUTPUT ${SYM_FIX_DIR}/sym_e2e_opt
  COMMAND ${CMAKE_CXX_COMPILER} -O2 -g -o ${SYM_FIX_DIR}/sym_e2e_opt ${SYM_E2E_SRC}
  DEPENDS ${SYM_E2E_SRC} VERBATIM)
add_custom_target(sym_e2e_programs ALL DEPENDS ${SYM_FIX_DIR}/sym_e2e_opt)
if(Python3_Interpreter_FOUND)
  add_test(NAME symbolize_e2e
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/programs/sym_e2e_check.py
                   $<TARGET_FILE:tmtop> ${SYM_FIX_DIR}/sym_e2e_opt ${SYM_E2E_SRC}
                   ${SYM_ADDR2LINE} ${SYM_NM})
  set_tests_properties(symbolize_e2e PROPERTIES LABELS "e2e" TIMEOUT 120)
endif()
