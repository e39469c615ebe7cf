# Recordings (tmtop --record / --load): the format's unit test, every prefix
# of a real recording, and end-to-end runs comparing a loaded recording's
# report with the live one (tests/e2e/record.py).
add_executable(test_tracefile unit/test_tracefile.c)
target_link_libraries(test_tracefile PRIVATE tm_wire tm_store tm_common tm_check)
target_compile_options(test_tracefile PRIVATE ${TMTOP_SAN_FLAGS})
target_link_options(test_tracefile PRIVATE ${TMTOP_SAN_FLAGS})
add_test(NAME tracefile COMMAND test_tracefile)
set_tests_properties(tracefile PROPERTIES LABELS unit)

set(REC_DIR ${CMAKE_CURRENT_BINARY_DIR}/rec)
file(MAKE_DIRECTORY ${REC_DIR})
# A real recording (e2e_basic under the hook), then every prefix of it.
add_test(NAME tracefile_record
         COMMAND $<TARGET_FILE:tmtop> --report -o ${REC_DIR}/basic.txt
                 --record ${REC_DIR}/basic.rec -- ${CMAKE_CURRENT_BINARY_DIR}/e2e/e2e_basic)
set_tests_properties(tracefile_record PROPERTIES LABELS unit FIXTURES_SETUP tracefile_rec
                     TIMEOUT 60)
add_test(NAME tracefile_prefixes COMMAND test_tracefile ${REC_DIR}/basic.rec)
set_tests_properties(tracefile_prefixes PROPERTIES LABELS unit FIXTURES_REQUIRED tracefile_rec
                     TIMEOUT 300)

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  foreach(t identical follow killed corrupt stale)
    add_test(NAME record_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/record.py
                     --tmtop $<TARGET_FILE:tmtop> --bindir ${CMAKE_CURRENT_BINARY_DIR}/e2e
                     --srcdir ${CMAKE_CURRENT_SOURCE_DIR}/programs ${t})
    set_tests_properties(record_${t} PROPERTIES LABELS e2e TIMEOUT 180)
  endforeach()
endif()
