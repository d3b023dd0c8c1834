// SPDX-License-Identifier: Apache-2.0
// portwatch_docs OUTDIR: writes the man page and the shell completions, generated from the
// command line's definition (app/cli_docs.h), into OUTDIR. Run at build time.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "app/cli_docs.h"
#include "app/options.h"
#include "app/version.h"

namespace {

bool write_file(const std::string &path, const std::string &text) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (file) return true;
    std::fprintf(stderr, "portwatch_docs: cannot write %s\n", path.c_str());
    return false;
}

}  // namespace

int main(int argc, char **argv) {
    using namespace portwatch;
    if (argc != 2) {
        std::fprintf(stderr, "usage: portwatch_docs OUTDIR\n");
        return 2;
    }
    const std::string directory = argv[1];
    std::unique_ptr<CLI::App> app = command_line_app();
    bool written = write_file(directory + "/portwatch.8", man_page(*app, kPortwatchVersion));
    written &= write_file(directory + "/portwatch.bash-completion", bash_completion(*app));
    written &= write_file(directory + "/_portwatch", zsh_completion(*app));
    written &= write_file(directory + "/portwatch.fish", fish_completion(*app));
    return written ? 0 : 1;
}
