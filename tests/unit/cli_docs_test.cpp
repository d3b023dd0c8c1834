// SPDX-License-Identifier: Apache-2.0
// The man page and the completions against the real command line: every option of every
// subcommand, found by walking the CLI11 app (not a list kept here), is in each of them.
#include "app/cli_docs.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app/options.h"
#include "app/version.h"

namespace portwatch {
namespace {

// The text from `start` up to the first of `ends` after it; "" when `start` is not there.
std::string between(const std::string &text, const std::string &start,
                    const std::vector<std::string> &ends) {
    std::size_t begin = text.find(start);
    if (begin == std::string::npos) return "";
    std::size_t end = std::string::npos;
    for (const std::string &marker : ends)
        end = std::min(end, text.find(marker, begin + start.size()));
    return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

std::string man_subsection(const std::string &page, const CLI::App &command) {
    return between(page, "\n.SS \"portwatch " + command.get_name() + "\"\n", {"\n.SS ", "\n.SH "});
}

std::string man_section(const std::string &page, const std::string &title) {
    return between(page, "\n.SH " + title + "\n", {"\n.SH "});
}

// A shell function's definition, `name() {` to its closing brace.
std::string shell_function(const std::string &script, const std::string &name) {
    return between(script, "\n" + name + "() {\n", {"\n}\n"});
}

bool flag_character(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
}

// `flag` as a whole word of `text`: "--report-top" is not in "--report-topmost".
bool has_flag(const std::string &text, const std::string &flag) {
    for (std::size_t at = text.find(flag); at != std::string::npos; at = text.find(flag, at + 1)) {
        bool starts = at == 0 || !flag_character(text[at - 1]);
        std::size_t after = at + flag.size();
        if (starts && (after == text.size() || !flag_character(text[after]))) return true;
    }
    return false;
}

// The line after `arm` (a `case` pattern such as "--proto)"): what bash does for that value.
std::string bash_arm_action(const std::string &function, const std::string &arm) {
    std::size_t at = function.find("\n        " + arm);
    if (at == std::string::npos) return "";
    std::size_t line = function.find('\n', at + 1) + 1;
    return function.substr(line, function.find('\n', line) - line);
}

class CliDocs : public testing::Test {
  protected:
    std::unique_ptr<CLI::App> app = command_line_app();
    std::string page = man_page(*app, kPortwatchVersion);
    std::string bash = bash_completion(*app);
    std::string zsh = zsh_completion(*app);
    std::string fish = fish_completion(*app);
};

TEST_F(CliDocs, TheAppHasSubcommandsWithOptions) {  // else the loops below check nothing
    ASSERT_EQ(subcommands_of(*app).size(), 4u);
    for (const CLI::App *command : subcommands_of(*app))
        EXPECT_GE(options_of(*command).size(), 3u) << command->get_name();
}

TEST_F(CliDocs, ManPageListsEveryOptionUnderItsSubcommand) {
    for (const CLI::App *command : subcommands_of(*app)) {
        std::string section = man_subsection(page, *command);
        ASSERT_FALSE(section.empty()) << command->get_name();
        EXPECT_NE(section.find(roff_escape(command->get_description())), std::string::npos);
        for (const CLI::Option *option : options_of(*command)) {
            if (option == command->get_help_ptr()) continue;  // said once, under OPTIONS
            SCOPED_TRACE(command->get_name() + " " + long_flag(*option));
            EXPECT_NE(section.find("\n\\fB" + roff_escape(long_flag(*option)) + "\\fR"),
                      std::string::npos)
                << section;
            EXPECT_NE(section.find(roff_escape(option->get_description())), std::string::npos);
            for (const std::string &choice : option_choices(*option))
                EXPECT_NE(section.find("\\fI" + roff_escape(choice) + "\\fR"), std::string::npos);
        }
    }
}

TEST_F(CliDocs, ManPageListsTheGlobalOptionsAndEverySubcommandInTheSynopsis) {
    std::string options = man_section(page, "OPTIONS");
    for (const CLI::Option *option : options_of(*app))
        EXPECT_NE(options.find("\\fB" + roff_escape(long_flag(*option)) + "\\fR"),
                  std::string::npos)
            << long_flag(*option);
    std::string synopsis = man_section(page, "SYNOPSIS");
    for (const CLI::App *command : subcommands_of(*app))
        EXPECT_NE(synopsis.find("\\fBportwatch " + command->get_name() + "\\fR"), std::string::npos)
            << command->get_name();
}

TEST_F(CliDocs, ManPageHasItsSections) {
    EXPECT_EQ(page.rfind(".\\\" portwatch(8)", 0), 0u);
    EXPECT_NE(
        page.find("\n.TH PORTWATCH 8 \"\" \"portwatch " + std::string(kPortwatchVersion) + "\" "),
        std::string::npos);
    for (const char *title :
         {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT",
          "\"EXIT STATUS\"", "SIGNALS", "FILES", "EXAMPLES", "\"SEE ALSO\""})
        EXPECT_FALSE(man_section(page, title).empty()) << title;
    for (const char *kind :
         {"bind", "bind_ephemeral", "listen_autobind", "connect_autobind", "sendto_autobind"})
        EXPECT_NE(man_section(page, "DESCRIPTION").find("\n.B " + std::string(kind) + "\n"),
                  std::string::npos)
            << kind;
    EXPECT_NE(man_section(page, "ENVIRONMENT").find("PORTWATCH_HOOKS"), std::string::npos);
}

// The prose (examples, exit status, signals) names only flags the command line has.
TEST_F(CliDocs, ManPageNamesNoFlagThatDoesNotExist) {
    std::set<std::string> flags;
    for (const CLI::Option *option : options_of(*app)) flags.insert(long_flag(*option));
    for (const CLI::App *command : subcommands_of(*app))
        for (const CLI::Option *option : options_of(*command)) flags.insert(long_flag(*option));
    const std::string escaped_dashes = "\\-\\-";
    for (std::size_t at = page.find(escaped_dashes); at != std::string::npos;
         at = page.find(escaped_dashes, at + 1)) {
        std::string flag = "--";
        std::size_t end = at + escaped_dashes.size();
        while (end < page.size() && (std::isalnum(static_cast<unsigned char>(page[end])) ||
                                     page.compare(end, 2, "\\-") == 0)) {
            flag += page[end] == '\\' ? '-' : page[end];
            end += page[end] == '\\' ? 2 : 1;
        }
        EXPECT_TRUE(flags.count(flag)) << flag;
        at = end - 1;
    }
}

// Every line that starts with a dot is one of the macros the page means to use: no text line
// (a description, say) turned into a request.
TEST_F(CliDocs, ManPageLinesStartingWithADotAreKnownMacros) {
    const std::set<std::string> macros = {".\\\"", ".TH", ".SH", ".SS", ".TP", ".PP", ".B", ".BR",
                                          ".I",    ".IR", ".RS", ".RE", ".nf", ".fi", ".br"};
    std::istringstream lines(page);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || (line[0] != '.' && line[0] != '\'')) continue;
        EXPECT_TRUE(macros.count(line.substr(0, line.find(' ')))) << line;
    }
}

TEST_F(CliDocs, BashCompletesEveryOptionOfEverySubcommand) {
    std::string main_function = shell_function(bash, "_portwatch");
    ASSERT_FALSE(main_function.empty()) << bash;
    EXPECT_NE(bash.find("\ncomplete -F _portwatch portwatch\n"), std::string::npos);
    for (const CLI::App *command : subcommands_of(*app)) {
        std::string function = "_portwatch_" + command->get_name();
        EXPECT_NE(main_function.find(command->get_name() + ") " + function + " ;;"),
                  std::string::npos)
            << command->get_name();
        EXPECT_TRUE(has_flag(shell_function(bash, "_portwatch_global"), command->get_name()));
        std::string body = shell_function(bash, function);
        ASSERT_FALSE(body.empty()) << function;
        // The words offered after the subcommand: the last line of its function.
        std::string offered = body.substr(body.rfind("\n    _portwatch_words "));
        for (const CLI::Option *option : options_of(*command)) {
            SCOPED_TRACE(command->get_name() + " " + long_flag(*option));
            EXPECT_TRUE(has_flag(offered, long_flag(*option))) << offered;
        }
    }
}

TEST_F(CliDocs, BashCompletesTheChoicesAndFileNames) {
    const CLI::App *monitor = app->get_subcommand("monitor");
    std::string body = shell_function(bash, "_portwatch_monitor");
    const std::pair<const char *, std::vector<std::string>> cases[] = {
        {"--proto", {"tcp", "udp"}},
        {"--hooks", {"auto", "fexit", "tracepoint"}},
        {"--events", {"all", "failures", "none"}},
        {"--family", {"ipv4", "ipv6", "4", "6"}},
    };
    for (const auto &[flag, choices] : cases) {
        EXPECT_EQ(option_choices(*monitor->get_option(flag)), choices) << flag;
        std::string action = bash_arm_action(body, std::string(flag) + ")");
        EXPECT_EQ(action, "            _portwatch_words '" + CLI::detail::join(choices, " ") + "'")
            << flag << "\n"
            << body;
    }
    EXPECT_TRUE(takes_file_name(*monitor->get_option("--output")));
    EXPECT_FALSE(takes_file_name(*monitor->get_option("--comm")));
    EXPECT_EQ(bash_arm_action(body, "--output)"), "            _portwatch_files");
}

TEST_F(CliDocs, ZshCompletesEveryOptionOfEverySubcommand) {
    EXPECT_EQ(zsh.rfind("#compdef portwatch\n", 0), 0u);
    std::string main_function = shell_function(zsh, "_portwatch");
    for (const CLI::App *command : subcommands_of(*app)) {
        std::string function = "_portwatch_" + command->get_name();
        EXPECT_NE(main_function.find("'" + command->get_name() + ":"), std::string::npos);
        EXPECT_NE(main_function.find(command->get_name() + ") " + function + " ;;"),
                  std::string::npos);
        std::string body = shell_function(zsh, function);
        ASSERT_FALSE(body.empty()) << function;
        for (const CLI::Option *option : options_of(*command)) {
            SCOPED_TRACE(command->get_name() + " " + long_flag(*option));
            EXPECT_TRUE(has_flag(body, long_flag(*option))) << body;
            std::vector<std::string> choices = option_choices(*option);
            if (!choices.empty()) {
                EXPECT_NE(body.find(":(" + CLI::detail::join(choices, " ") + ")'"),
                          std::string::npos);
            }
        }
    }
    EXPECT_NE(shell_function(zsh, "_portwatch_monitor").find(":output:_files'"), std::string::npos);
}

TEST_F(CliDocs, FishCompletesEveryOptionOfEverySubcommand) {
    for (const CLI::App *command : subcommands_of(*app))
        for (const CLI::Option *option : options_of(*command))
            EXPECT_NE(
                fish.find(
                    "'__fish_seen_subcommand_from " + command->get_name() + "'" +
                    (option->get_snames().empty() ? "" : " -s " + option->get_snames().front()) +
                    " -l " + option->get_lnames().front() + " "),
                std::string::npos)
                << command->get_name() << " " << long_flag(*option);
}

TEST(RoffEscape, EscapesBackslashesHyphensAndLeadingControlCharacters) {
    EXPECT_EQ(roff_escape("--proto"), "\\-\\-proto");
    EXPECT_EQ(roff_escape("C:\\temp"), "C:\\etemp");
    EXPECT_EQ(roff_escape(".TH x"), "\\&.TH x");
    EXPECT_EQ(roff_escape("'quoted"), "\\&'quoted");
    EXPECT_EQ(roff_escape("a.b 'c'\n.d\n'e"), "a.b 'c'\n\\&.d\n\\&'e");
    EXPECT_EQ(roff_escape("plain text"), "plain text");
}

TEST(RoffEscape, DescriptionsReachThePageEscaped) {
    CLI::App app("demo: a test", "demo");
    CLI::App *command = app.add_subcommand("run", ".run starts with a dot");
    std::string value;
    command->add_option("--path", value, ".hidden is a request, C:\\dir a backslash");
    std::string page = man_page(app, "1.0");
    EXPECT_NE(page.find("\n\\&.run starts with a dot.\n"), std::string::npos) << page;
    EXPECT_NE(page.find("\n\\&.hidden is a request, C:\\edir a backslash.\n"), std::string::npos)
        << page;
    EXPECT_EQ(page.find("\n.hidden"), std::string::npos);
    EXPECT_EQ(page.find("\n.run"), std::string::npos);
}

}  // namespace
}  // namespace portwatch
