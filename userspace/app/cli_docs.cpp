// SPDX-License-Identifier: Apache-2.0
#include "app/cli_docs.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <string_view>

#include "app/options.h"

namespace portwatch {

std::vector<const CLI::App *> subcommands_of(const CLI::App &app) {
    return app.get_subcommands([](const CLI::App *) { return true; });
}

// The flags; not monitor's `-- CMD` (a positional), which its description names.
std::vector<const CLI::Option *> options_of(const CLI::App &app) {
    return app.get_options([](const CLI::Option *option) {
        return !option->get_name().empty() &&
               (!option->get_lnames().empty() || !option->get_snames().empty());
    });
}

std::string long_flag(const CLI::Option &option) {
    if (!option.get_lnames().empty()) return "--" + option.get_lnames().front();
    return "-" + option.get_snames().front();
}

namespace {

// ---- reading the app ------------------------------------------------------------------------

// "proto": the label of its value.
std::string bare_name(const CLI::Option &option) {
    std::string flag = long_flag(option);
    return flag.substr(flag.find_first_not_of('-'));
}

// Every spelling: "-h", "--help".
std::vector<std::string> flag_spellings(const CLI::Option &option) {
    std::vector<std::string> spellings;
    for (const std::string &name : option.get_snames()) spellings.push_back("-" + name);
    for (const std::string &name : option.get_lnames()) spellings.push_back("--" + name);
    return spellings;
}

bool takes_value(const CLI::Option &option) {
    return option.get_items_expected_max() != 0;
}

// CLI11's type name is "TYPE" or "TYPE:what its validators say" ("UINT:a number >= 1").
std::string value_type(const CLI::Option &option) {
    std::string type = option.get_type_name();
    return type.substr(0, type.find(':'));
}

std::string value_constraint(const CLI::Option &option) {
    std::string type = option.get_type_name();
    std::size_t colon = type.find(':');
    return colon == std::string::npos ? "" : type.substr(colon + 1);
}

// A subcommand's name as a shell function name can carry it.
std::string identifier(const std::string &name) {
    std::string result = name;
    for (char &c : result)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return result;
}

std::string joined(const std::vector<std::string> &words, std::string_view separator) {
    std::string result;
    for (const std::string &word : words) {
        if (!result.empty()) result += separator;
        result += word;
    }
    return result;
}

// A description as a sentence: with its full stop.
std::string sentence(const std::string &text) {
    if (text.empty() || std::string_view(".!?").find(text.back()) != std::string_view::npos)
        return text;
    return text + ".";
}

// `text` with every character in `specials` preceded by a backslash.
std::string backslashed(const std::string &text, std::string_view specials) {
    std::string result;
    for (char c : text) {
        if (specials.find(c) != std::string_view::npos) result += '\\';
        result += c;
    }
    return result;
}

// `text` in single quotes for bash and zsh.
std::string shell_quoted(const std::string &text) {
    std::string result = "'";
    for (char c : text) result += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return result + "'";
}

// `text` in single quotes for fish, which escapes \ and ' inside them.
std::string fish_quoted(const std::string &text) {
    return "'" + backslashed(text, "\\'") + "'";
}

// ---- the man page ---------------------------------------------------------------------------

std::string bold(const std::string &text) {
    return "\\fB" + roff_escape(text) + "\\fR";
}
std::string italic(const std::string &text) {
    return "\\fI" + roff_escape(text) + "\\fR";
}

// An option's tag: "--proto tcp|udp", "--pid UINT", "-h, --help".
std::string option_tag(const CLI::Option &option) {
    std::vector<std::string> names;
    for (const std::string &spelling : flag_spellings(option)) names.push_back(bold(spelling));
    std::string tag = joined(names, ", ");
    if (!takes_value(option)) return tag;
    std::vector<std::string> choices = option_choices(option);
    if (choices.empty()) return tag + " " + italic(value_type(option));
    for (std::string &choice : choices) choice = italic(choice);
    return tag + " " + joined(choices, "|");
}

std::string option_entry(const CLI::Option &option) {
    std::string entry = ".TP\n" + option_tag(option) + "\n" +
                        roff_escape(sentence(option.get_description())) + "\n";
    if (takes_value(option) && option_choices(option).empty() && !value_constraint(option).empty())
        entry += "Value: " + roff_escape(value_constraint(option)) + ".\n";
    return entry;
}

std::string name_section(const CLI::App &app) {
    std::string summary = app.get_description();
    std::string prefix = app.get_name() + ": ";
    if (summary.rfind(prefix, 0) == 0) summary.erase(0, prefix.size());
    return ".SH NAME\n" + roff_escape(app.get_name()) + " \\- " + roff_escape(summary) + "\n";
}

std::string synopsis_section(const CLI::App &app) {
    std::string text = ".SH SYNOPSIS\n";
    std::vector<std::string> alternatives;
    for (const CLI::Option *option : options_of(app))
        alternatives.push_back("\\fB" + roff_escape(long_flag(*option)) + "\\fR");
    text += bold(app.get_name()) + " [" + joined(alternatives, " | ") + "]\n.br\n";
    for (const CLI::App *command : subcommands_of(app))
        text += bold(app.get_name() + " " + command->get_name()) + " [" + italic("OPTIONS") +
                "]\n.br\n";
    return text;
}

constexpr const char *kDescription = R"(.SH DESCRIPTION
.B portwatch
is an eBPF agent that sees every local port the Linux kernel hands out \(em by bind(),
listen(), connect() and sendto(), sendmsg(), sendmmsg(), TCP and UDP, IPv4 and IPv6, in every
network namespace \(em and says who got it, how, and what went wrong when the kernel said no.
It tells how full each port range is, per network namespace and per destination for TCP
connect(), whether TIME_WAIT fills it, when it runs out at the current rate, and why it is
filling, with the sysctl or socket option to change.
.PP
Every allocation is one of five kinds (the
.B how
field), as the kernel makes them (see
.BR ip (7)):
.TP
.B bind
bind() to a specific port.
Unique per network namespace and port; EADDRINUSE when taken.
.TP
.B bind_ephemeral
bind() to port 0.
One range per network namespace, shared with all ports held by bind(); EADDRINUSE when
exhausted.
.TP
.B listen_autobind
listen() on an unbound stream socket.
As bind_ephemeral.
.TP
.B connect_autobind
connect() on an unbound socket (TCP or UDP), or after bind() with IP_BIND_ADDRESS_NO_PORT.
TCP: one range per network namespace, source address, destination address and destination
port, minus the ports held by bind(); EADDRNOTAVAIL when exhausted.
UDP: exclusive per network namespace; EAGAIN when exhausted.
.TP
.B sendto_autobind
sendto(), sendmsg() or sendmmsg() on an unbound datagram socket.
Exclusive per network namespace; EAGAIN when exhausted.
.PP
\(lqEphemeral\(rq means inside the network namespace's
.IR ip_local_port_range ,
minus its
.IR ip_local_reserved_ports .
)";

std::string options_section(const CLI::App &app) {
    std::string text = ".SH OPTIONS\n";
    for (const CLI::Option *option : options_of(app)) text += option_entry(*option);
    text += ".PP\nAfter a subcommand, " + option_tag(*app.get_help_ptr()) +
            " lists that subcommand's options.\n";
    return text;
}

// One subsection per subcommand: what it does, and each of its options (but --help).
std::string commands_section(const CLI::App &app) {
    std::string text = ".SH COMMANDS\n";
    for (const CLI::App *command : subcommands_of(app)) {
        text += ".SS \"" + roff_escape(app.get_name() + " " + command->get_name()) + "\"\n";
        text += roff_escape(sentence(command->get_description())) + "\n";
        for (const CLI::Option *option : options_of(*command))
            if (option != command->get_help_ptr()) text += option_entry(*option);
    }
    return text;
}

constexpr const char *kEnvironmentToSeeAlso = R"(.SH ENVIRONMENT
.TP
.B PORTWATCH_HOOKS
The hook set when
.B \-\-hooks
is not given:
.BR auto ,
.B fexit
or
.BR tracepoint .
The command line wins; any other value is a command line error (exit status 2).
.SH "EXIT STATUS"
.TP
.B 0
Success: help or version printed; monitor stopped by
.BR \-\-duration ,
SIGINT or SIGTERM (after its final report and stats line); a snapshot printed;
top quit; check found that monitor can run here.
.TP
.B 1
A failure at run time, with one line on standard error: no privileges, no BTF,
the BPF programs do not load or attach (as with
.B \-\-hooks fexit
where fexit cannot attach),
.B \-\-output
cannot be opened, the
.B \-\-metrics\-listen
address cannot be bound.
For check: monitor cannot run here, and why.
.TP
.B 2
A bad command line, with one line on standard error: an unknown subcommand or flag,
a bad value, a bad PORTWATCH_HOOKS; also top without a terminal.
.TP
.B 3
monitor with
.BR \-\-fail\-on :
a chosen condition happened during the run; one line on standard error names it.
.TP
.B 4
monitor was stopped while its output took nothing, and gave up on it after 5 s.
.PP
monitor with a command after a double dash exits with the command's status where it
would exit 0: 127 when the command is not found, 126 when it cannot be executed,
128+N when signal N killed it.
.SH SIGNALS
.TP
.BR SIGINT ", " SIGTERM
monitor writes a final report and stats line and exits 0; top restores the terminal
and exits 0.
.TP
.B SIGHUP
monitor with
.B \-\-output
reopens the file, for log rotation.
Without
.BR \-\-output ,
and in top, it stops the run as SIGTERM does.
.SH FILES
.TP
.I /sys/kernel/btf/vmlinux
The kernel's BTF (CONFIG_DEBUG_INFO_BTF), which the BPF programs need.
.TP
.I /proc/sys/net/ipv4/ip_local_port_range
The range of ephemeral ports, read inside each network namespace.
.TP
.I /proc/sys/net/ipv4/ip_local_reserved_ports
The ports of the range that are not handed out, read inside each network namespace.
.TP
.I /lib/systemd/system/portwatch.service
The systemd unit that runs
.B portwatch monitor
as a service.
.SH EXAMPLES
The agent: JSON lines of failed allocations, warnings, reports and stats appended to a file,
and Prometheus metrics on 127.0.0.1:9464:
.PP
.RS
.nf
portwatch monitor \-\-json \-\-events failures \-\-metrics\-listen 9464 \-\-output events.json
.fi
.RE
.PP
Trace by hand, one process's TCP over IPv4:
.PP
.RS
.nf
portwatch monitor \-\-pid 1234 \-\-proto tcp \-\-family 4
.fi
.RE
.PP
The TCP ports in use now, with a warning for every scope that is filling:
.PP
.RS
.nf
portwatch snapshot \-\-proto tcp
.fi
.RE
.PP
A live view of one network namespace:
.PP
.RS
.nf
portwatch top \-\-netns 4026531840
.fi
.RE
.PP
Can monitor run here, with which hooks, seeing how much?
.PP
.RS
.nf
portwatch check \-\-json
.fi
.RE
.SH "SEE ALSO"
.BR ss (8),
.BR ip (7),
.BR bpf (2)
)";

// ---- bash -----------------------------------------------------------------------------------

constexpr const char *kBashHelpers = R"(_portwatch_words() {
    mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}

_portwatch_files() {
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}
)";

// Completes what may come before a subcommand (its name, --help, --version).
constexpr const char *kBashGlobalFunction = "_portwatch_global";

std::string bash_arm(const std::vector<std::string> &patterns, const std::string &action) {
    return "        " + joined(patterns, " | ") + ")\n            " + action +
           "\n            return\n            ;;\n";
}

// The arms of `case $prev` that complete the options' values: their choices, file names, or
// nothing for the rest of those that take a value.
std::string bash_value_arms(const CLI::App &command) {
    std::string arms;
    std::vector<std::string> free_values;
    for (const CLI::Option *option : options_of(command)) {
        if (!takes_value(*option)) continue;
        std::vector<std::string> choices = option_choices(*option);
        if (!choices.empty())
            arms += bash_arm(flag_spellings(*option),
                             "_portwatch_words " + shell_quoted(joined(choices, " ")));
        else if (takes_file_name(*option))
            arms += bash_arm(flag_spellings(*option), "_portwatch_files");
        else
            for (const std::string &spelling : flag_spellings(*option))
                free_values.push_back(spelling);
    }
    if (!free_values.empty()) arms += bash_arm(free_values, "COMPREPLY=()");
    return arms;
}

std::string bash_command_function(const std::string &function, const CLI::App &command,
                                  const std::vector<std::string> &words) {
    std::string arms = bash_value_arms(command);
    std::string text = function + "() {\n";
    if (!arms.empty()) text += "    case $prev in\n" + arms + "    esac\n";
    return text + "    _portwatch_words " + shell_quoted(joined(words, " ")) + "\n}\n";
}

std::vector<std::string> option_words(const CLI::App &command) {
    std::vector<std::string> words;
    for (const CLI::Option *option : options_of(command))
        for (const std::string &spelling : flag_spellings(*option)) words.push_back(spelling);
    return words;
}

std::string bash_main_function(const CLI::App &app) {
    std::vector<std::string> names;
    for (const CLI::App *command : subcommands_of(app)) names.push_back(command->get_name());
    std::string dispatch;
    for (const std::string &name : names)
        dispatch += "        " + name + ") _portwatch_" + identifier(name) + " ;;\n";
    return "_portwatch() {\n"
           "    local cur=${COMP_WORDS[COMP_CWORD]} prev=\"\" subcommand=\"\" i\n"
           "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
           "    # --flag=value: bash splits at the '='.\n"
           "    if [[ $cur == = ]]; then\n"
           "        cur=\"\"\n"
           "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
           "        prev=${COMP_WORDS[COMP_CWORD - 2]}\n"
           "    fi\n"
           "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
           "        case ${COMP_WORDS[i]} in\n"
           "            " +
           joined(names, " | ") +
           ")\n"
           "                subcommand=${COMP_WORDS[i]}\n"
           "                break\n"
           "                ;;\n"
           "        esac\n"
           "    done\n"
           "    case $subcommand in\n"
           "        \"\") " +
           kBashGlobalFunction + " ;;\n" + dispatch +
           "    esac\n"
           "}\n";
}

// ---- zsh ------------------------------------------------------------------------------------

// An _arguments spec: '(-h --help)'{-h,--help}'[Print ...]', '--proto=[Only ...]:proto:(tcp udp)'.
std::string zsh_option_spec(const CLI::Option &option) {
    std::vector<std::string> spellings = flag_spellings(option);
    std::string value = takes_value(option) ? "=" : "";
    std::string explanation = "[" + backslashed(option.get_description(), "\\[]:") + "]";
    if (takes_value(option)) {
        std::vector<std::string> choices = option_choices(option);
        std::string action = !choices.empty()          ? "(" + joined(choices, " ") + ")"
                             : takes_file_name(option) ? "_files"
                                                       : " ";
        explanation += ":" + bare_name(option) + ":" + action;
    }
    if (spellings.size() == 1) return shell_quoted(spellings.front() + value + explanation);
    std::vector<std::string> braced;
    for (const std::string &spelling : spellings) braced.push_back(spelling + value);
    return shell_quoted("(" + joined(spellings, " ") + ")") + "{" + joined(braced, ",") + "}" +
           shell_quoted(explanation);
}

std::string zsh_arguments(const std::vector<std::string> &specs, const std::string &indent) {
    std::string text = indent + "_arguments";
    for (const std::string &spec : specs) text += " \\\n" + indent + "    " + spec;
    return text + "\n";
}

std::string zsh_command_function(const std::string &function, const CLI::App &command) {
    std::vector<std::string> specs;
    for (const CLI::Option *option : options_of(command)) specs.push_back(zsh_option_spec(*option));
    return function + "() {\n" + zsh_arguments(specs, "    ") + "}\n";
}

std::string zsh_main_function(const CLI::App &app) {
    std::vector<std::string> specs = {"-C"};
    for (const CLI::Option *option : options_of(app)) specs.push_back(zsh_option_spec(*option));
    specs.push_back("'1: :->subcommand'");
    specs.push_back("'*:: :->option'");
    std::string described, dispatch;
    for (const CLI::App *command : subcommands_of(app)) {
        described +=
            "                " +
            shell_quoted(backslashed(command->get_name(), ":") + ":" + command->get_description()) +
            "\n";
        dispatch += "                " + command->get_name() + ") _portwatch_" +
                    identifier(command->get_name()) + " ;;\n";
    }
    return "_portwatch() {\n"
           "    local curcontext=$curcontext state state_descr line\n"
           "    typeset -A opt_args\n" +
           zsh_arguments(specs, "    ") +
           "    case $state in\n"
           "        subcommand)\n"
           "            local -a subcommands=(\n" +
           described +
           "            )\n"
           "            _describe -t subcommands 'portwatch subcommand' subcommands\n"
           "            ;;\n"
           "        option)\n"
           "            case $line[1] in\n" +
           dispatch +
           "            esac\n"
           "            ;;\n"
           "    esac\n"
           "}\n";
}

// ---- fish -----------------------------------------------------------------------------------

std::string fish_option_line(const std::string &condition, const CLI::Option &option) {
    std::string line = "complete -c portwatch -n " + fish_quoted(condition);
    for (const std::string &name : option.get_snames()) line += " -s " + name;
    for (const std::string &name : option.get_lnames()) line += " -l " + name;
    if (takes_value(option)) {
        std::vector<std::string> choices = option_choices(option);
        if (!choices.empty())
            line += " -x -a " + fish_quoted(joined(choices, " "));
        else
            line += takes_file_name(option) ? " -r -F" : " -x";
    }
    return line + " -d " + fish_quoted(option.get_description()) + "\n";
}

constexpr const char *kGeneratedFrom =
    "generated by portwatch_docs from the command line's definition (CLI11); do not edit.";

}  // namespace

std::string roff_escape(const std::string &text) {
    std::string result;
    bool line_start = true;
    for (char c : text) {
        if (line_start && (c == '.' || c == '\'')) result += "\\&";
        line_start = c == '\n';
        if (c == '\\')
            result += "\\e";
        else if (c == '-')
            result += "\\-";
        else
            result += c;
    }
    return result;
}

std::vector<std::string> option_choices(const CLI::Option &option) {
    std::string type = option.get_type_name();
    std::size_t open = type.find('{'), close = type.find('}', open);
    if (open == std::string::npos || close == std::string::npos) return {};
    std::vector<std::string> choices;
    for (std::string item : CLI::detail::split(type.substr(open + 1, close - open - 1), ','))
        choices.push_back(item.substr(0, item.find("->")));  // a transformer's "all->0"
    return choices;
}

std::string man_page(const CLI::App &app, const std::string &version) {
    return ".\\\" " + app.get_name() + "(8), " + kGeneratedFrom + "\n" +
           ".TH PORTWATCH 8 \"\" \"portwatch " + roff_escape(version) +
           "\" \"System Administration\"\n" + name_section(app) + synopsis_section(app) +
           kDescription + options_section(app) + commands_section(app) + kEnvironmentToSeeAlso;
}

std::string bash_completion(const CLI::App &app) {
    std::string text = std::string("# bash completion for portwatch(8), ") + kGeneratedFrom +
                       "\n\n" + kBashHelpers;
    std::vector<std::string> top_words;
    for (const CLI::App *command : subcommands_of(app)) top_words.push_back(command->get_name());
    for (const std::string &word : option_words(app)) top_words.push_back(word);
    text += "\n" + bash_command_function(kBashGlobalFunction, app, top_words);
    for (const CLI::App *command : subcommands_of(app))
        text += "\n" + bash_command_function("_portwatch_" + identifier(command->get_name()),
                                             *command, option_words(*command));
    return text + "\n" + bash_main_function(app) + "\ncomplete -F _portwatch portwatch\n";
}

std::string zsh_completion(const CLI::App &app) {
    std::string text = std::string("#compdef portwatch\n# zsh completion for portwatch(8), ") +
                       kGeneratedFrom + "\n";
    for (const CLI::App *command : subcommands_of(app))
        text +=
            "\n" + zsh_command_function("_portwatch_" + identifier(command->get_name()), *command);
    return text + "\n" + zsh_main_function(app) + "\n_portwatch \"$@\"\n";
}

std::string fish_completion(const CLI::App &app) {
    std::string text = std::string("# fish completion for portwatch(8), ") + kGeneratedFrom +
                       "\ncomplete -c portwatch -f\n";
    for (const CLI::Option *option : options_of(app))
        text += fish_option_line("__fish_use_subcommand", *option);
    for (const CLI::App *command : subcommands_of(app))
        text += "complete -c portwatch -n __fish_use_subcommand -a " +
                fish_quoted(command->get_name()) + " -d " +
                fish_quoted(command->get_description()) + "\n";
    for (const CLI::App *command : subcommands_of(app))
        for (const CLI::Option *option : options_of(*command))
            text += fish_option_line("__fish_seen_subcommand_from " + command->get_name(), *option);
    return text;
}

}  // namespace portwatch
