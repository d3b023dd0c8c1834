// SPDX-License-Identifier: Apache-2.0
#include "app/top.h"

#include <curses.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <ctime>
#include <optional>
#include <utility>
#include <vector>

#include "app/host_tables.h"
#include "app/live_run.h"
#include "app/terminfo.h"
#include "output/top_screen.h"
#include "system/host_info.h"

namespace portwatch {
namespace {

// top prints no lines: the screen is its output.
class SilentReporter : public Reporter {
  public:
    void ready(const ReadyInfo &) override {}
    void event(const Event &) override {}
    void stats(const StatsSnapshot &) override {}
    void warning(const Warning &) override {}
    void report(const Report &) override {}
    void flush() override {}
};

// The curses session: the terminal is put back by the destructor, on every way out.
class Terminal {
  public:
    Terminal() {
        initscr();
        cbreak();  // keys at once; ^C still raises SIGINT
        noecho();
        nodelay(stdscr, TRUE);
        keypad(stdscr, TRUE);
        curs_set(0);
        if (has_colors()) {
            start_color();
            use_default_colors();
            init_pair(1, COLOR_YELLOW, -1);
            init_pair(2, COLOR_RED, -1);
        }
    }
    ~Terminal() { endwin(); }
    Terminal(const Terminal &) = delete;
    Terminal &operator=(const Terminal &) = delete;

    void draw(const std::vector<ScreenLine> &lines) {
        erase();
        for (std::size_t row = 0; row < lines.size(); ++row) {
            attr_t attributes = attributes_of(lines[row].style);
            attron(attributes);
            mvaddstr(int(row), 0, lines[row].text.c_str());
            attroff(attributes);
        }
        refresh();
    }

    std::size_t rows() const { return std::size_t(std::max(LINES, 1)); }
    std::size_t cols() const { return std::size_t(std::max(COLS, 1)); }

  private:
    static attr_t attributes_of(ScreenLine::Style style) {
        bool colors = has_colors();
        switch (style) {
            case ScreenLine::Style::title:
            case ScreenLine::Style::heading:
                return A_BOLD;
            case ScreenLine::Style::warning:
                return colors ? COLOR_PAIR(1) : A_BOLD;
            case ScreenLine::Style::critical:
                return colors ? COLOR_PAIR(2) | A_BOLD : A_REVERSE;
            case ScreenLine::Style::normal:
                break;
        }
        return A_NORMAL;
    }
};

class TopView : public LiveView {
  public:
    explicit TopView(Clocks clocks) : clocks_(std::move(clocks)) {}

    void event(const Event &event) override {
        if (const auto *allocate = std::get_if<AllocateEvent>(&event);
            allocate && allocate->failed())
            failures_.add(*allocate);
    }

    void refresh(const Report &current, const StatsSnapshot &stats) override {
        current_ = current;
        stats_ = stats;
        redraw();
    }

    bool wants_stop() override {
        if (!terminal_) return false;
        for (int key = getch(); key != ERR; key = getch()) {
            if (key == 'q' || key == 'Q') return true;
            if (key == KEY_RESIZE) redraw();
        }
        return false;
    }

  private:
    // The screen is taken at the first refresh, once the programs are attached: an error
    // before that is printed on a terminal left as it was.
    void redraw() {
        if (!terminal_) terminal_.emplace();
        // The offset taken again at each redraw: the wall clock may have been stepped.
        ClockReading now = clocks_();
        TimeBase time = TimeBase::between(now.realtime_ns, now.boottime_ns);
        TopInput input{&current_, &stats_, &failures_, time, now.realtime_ns};
        terminal_->draw(render_top(input, terminal_->rows(), terminal_->cols()));
    }

    std::optional<Terminal> terminal_;
    Clocks clocks_;
    RecentFailures failures_;
    Report current_;
    StatsSnapshot stats_;
};

}  // namespace

int run_top(const MonitorOptions &options) {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        std::fprintf(stderr,
                     "portwatch: top needs a terminal; for a pipe or a file use `portwatch monitor "
                     "--json` or `portwatch snapshot`\n");
        return 2;
    }
    if (!terminfo_describes(STDOUT_FILENO)) {
        const char *term = std::getenv("TERM");
        std::fprintf(stderr,
                     "portwatch: top: no terminfo entry for TERM=%s (looked in $TERMINFO, "
                     "$TERMINFO_DIRS, /etc/terminfo, /lib/terminfo, /usr/share/terminfo)\n",
                     term ? term : "");
        return 1;
    }
    install_signal_handlers(false);
    SilentReporter silent;
    LiveRun run;
    run.options = options;
    run.reporter = &silent;
    TopView view(system_clocks);
    run.views.push_back(&view);
    return run_live(run);
}

}  // namespace portwatch
