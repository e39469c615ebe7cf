# The command line as a user meets it: install layout, help and version.
add_test(NAME install COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/install.sh ${CMAKE_BINARY_DIR}
  $<TARGET_FILE:tmtop-demo>)
set_tests_properties(install PROPERTIES LABELS cli)
add_test(NAME cli_help COMMAND $<TARGET_FILE:tmtop> --help)
set_tests_properties(cli_help PROPERTIES LABELS cli
  PASS_REGULAR_EXPRESSION "usage: tmtop \\[OPTIONS\\].*tmtop --report.*--frames N.*--include GLOB")
add_test(NAME cli_version COMMAND $<TARGET_FILE:tmtop> --version)
set_tests_properties(cli_version PROPERTIES LABELS cli PASS_REGULAR_EXPRESSION "^tmtop [0-9]+\\.[0-9]+\\.[0-9]+")
