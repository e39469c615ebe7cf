# The store: functional tests on synthetic streams, and the scale test (a
# million live blocks, memory per block, ingestion and snapshot rates).
foreach(t test_store test_store_scale test_store_view)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/unit/${t}.c)
  target_link_libraries(${t} PRIVATE tm_store tm_check)
  target_compile_options(${t} PRIVATE ${TMTOP_SAN_FLAGS})
  target_link_options(${t} PRIVATE ${TMTOP_SAN_FLAGS})
endforeach()
add_test(NAME store COMMAND test_store)
add_test(NAME store_scale COMMAND test_store_scale)
add_test(NAME store_view COMMAND test_store_view)
set_tests_properties(store store_scale store_view PROPERTIES LABELS unit)
set_tests_properties(store_scale PROPERTIES TIMEOUT 600)
