// SPDX-License-Identifier: Apache-2.0
// The man page portwatch(8) and the bash, zsh and fish completions, generated from the command
// line's one definition (command_line_app() in app/options.h): every subcommand and every option
// with its value type, fixed choices and description as CLI11 has them, so that neither can miss
// a flag. Pure: an app in, text out (portwatch_docs writes the files at build time).
#pragma once

#include <string>
#include <vector>

#include "app/options.h"  // command_line_app(), and CLI::App and CLI::Option declared

namespace portwatch {

// Every subcommand of `app`, and every option of `app` (a subcommand or the root), in order.
std::vector<const CLI::App *> subcommands_of(const CLI::App &app);
std::vector<const CLI::Option *> options_of(const CLI::App &app);

// "--proto", or "-x" for an option with no long name.
std::string long_flag(const CLI::Option &option);

// portwatch(8) in roff (man macros); `version` goes in its title line.
std::string man_page(const CLI::App &app, const std::string &version);

// A bash completion script: `complete -F _portwatch portwatch`.
std::string bash_completion(const CLI::App &app);

// A zsh completion function (`#compdef portwatch`), for a file named _portwatch on $fpath.
std::string zsh_completion(const CLI::App &app);

// fish `complete` commands, for a file named portwatch.fish.
std::string fish_completion(const CLI::App &app);

// `text` as roff text lines: backslashes and hyphens escaped, and a line that would begin with
// a control character ('.' or ') starting with \& instead.
std::string roff_escape(const std::string &text);

// The fixed values an option takes, as CLI11's type name lists them ("TEXT:{tcp,udp}"; a
// transformer's "{all->0,...}" gives "all"); none when it takes any value.
std::vector<std::string> option_choices(const CLI::Option &option);

}  // namespace portwatch
