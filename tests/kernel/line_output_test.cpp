// SPDX-License-Identifier: Apache-2.0
// The monitor's output once a stop is under way, on a real file as descriptor 1.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "system/output_file.h"

namespace portwatch::test {
namespace {

// Descriptor 1 on a temporary file for the scope's life (gtest's own lines included).
class StdoutOnAFile {
  public:
    StdoutOnAFile() {
        int file = mkstemp(path_);
        EXPECT_GE(file, 0);
        std::fflush(stdout);
        saved_ = dup(STDOUT_FILENO);
        dup2(file, STDOUT_FILENO);
        close(file);
    }
    ~StdoutOnAFile() {
        restore();
        unlink(path_);
    }
    void restore() {
        if (saved_ < 0) return;
        dup2(saved_, STDOUT_FILENO);
        close(saved_);
        saved_ = -1;
    }
    std::string text() const {
        std::ostringstream text;
        text << std::ifstream(path_).rdbuf();
        return text.str();
    }

  private:
    char path_[64] = "/tmp/portwatch-line-output-XXXXXX";
    int saved_ = -1;
};

// The stop's last pass took ~15-40 s on a host of 1M sockets: the final report came after
// LineOutput::kStopGrace, and was given up on (exit 3, now 4) though a file never blocks.
TEST(LineOutputTest, AFileTakesTheLinesOfAStopThatOutlastsTheGrace) {
    StdoutOnAFile file;
    bool gave_up = true;
    {
        LineOutput output(
            "the file", [] { return true; }, std::chrono::milliseconds(20));
        std::fputs("written as the stop began\n", output.stream());
        std::fflush(output.stream());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last pass
        std::fputs("the final report\n", output.stream());
        std::fflush(output.stream());
        gave_up = output.gave_up();
    }
    file.restore();
    EXPECT_FALSE(gave_up);
    EXPECT_EQ(file.text(), "written as the stop began\nthe final report\n");
}

}  // namespace
}  // namespace portwatch::test
