# SPDX-License-Identifier: Apache-2.0
# The man page portwatch(8) and the bash, zsh and fish completions, generated from the command
# line's one definition (userspace/app/options.cpp) by portwatch_docs into build/share/, again
# whenever the tool changes (a flag added, a description reworded).
# The generator is part of portwatch_cli, so that the unit tests (which link it) check it.
target_sources(portwatch_cli PRIVATE ${CMAKE_SOURCE_DIR}/userspace/app/cli_docs.cpp)
add_executable(portwatch_docs userspace/app/cli_docs_main.cpp)
target_link_libraries(portwatch_docs PRIVATE portwatch_cli)

set(PORTWATCH_DOCS_DIR ${CMAKE_BINARY_DIR}/share)
set(PORTWATCH_DOCS_FILES
  ${PORTWATCH_DOCS_DIR}/portwatch.8
  ${PORTWATCH_DOCS_DIR}/portwatch.bash-completion
  ${PORTWATCH_DOCS_DIR}/_portwatch
  ${PORTWATCH_DOCS_DIR}/portwatch.fish)
add_custom_command(
  OUTPUT ${PORTWATCH_DOCS_FILES}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PORTWATCH_DOCS_DIR}
  COMMAND portwatch_docs ${PORTWATCH_DOCS_DIR}
  DEPENDS portwatch_docs
  COMMENT "Generating the man page and shell completions")
add_custom_target(portwatch_docs_files ALL DEPENDS ${PORTWATCH_DOCS_FILES})
