// SPDX-License-Identifier: Apache-2.0
#include "output/reporter.h"

#include <string>
#include <variant>

#include "output/json_format.h"
#include "output/text_lines.h"

namespace portwatch {
namespace {

class StreamReporter : public Reporter {
  public:
    StreamReporter(std::FILE *out, TimeBase time, EventLines lines)
        : out_(out), time_(time), lines_(lines) {}
    void flush() override { std::fflush(out_); }
    void set_time_base(TimeBase time) override { time_ = time; }

  protected:
    void write(const std::string &line) { std::fwrite(line.data(), 1, line.size(), out_); }
    std::FILE *out_;
    TimeBase time_;
    EventLines lines_;
};

class JsonReporter : public StreamReporter {
  public:
    using StreamReporter::StreamReporter;
    void ready(const ReadyInfo &ready) override { write(json_line(to_json(ready))); }
    void event(const Event &event) override {
        if (!shows(lines_, event)) return;
        event_line_.clear();  // keeps its capacity
        append_json_line(event_line_, event, time_);
        write(event_line_);
    }
    void stats(const StatsSnapshot &stats) override { write(json_line(to_json(stats))); }
    void warning(const Warning &warning) override { write(json_line(to_json(warning, time_))); }
    void report(const Report &report) override { write(json_line(to_json(report, time_))); }

  private:
    std::string event_line_;
};

class TextReporter : public StreamReporter {
  public:
    using StreamReporter::StreamReporter;
    void ready(const ReadyInfo &ready) override { write(text_line(ready) + text_header()); }
    void event(const Event &event) override {
        if (shows(lines_, event)) write(text_line(event, time_));
    }
    void stats(const StatsSnapshot &stats) override { write(text_line(stats)); }
    void warning(const Warning &warning) override { write(text_line(warning, time_)); }
    void report(const Report &report) override { write(text_report(report, time_)); }
};

}  // namespace

std::unique_ptr<Reporter> make_reporter(OutputFormat format, std::FILE *out, TimeBase time,
                                        EventLines lines) {
    if (format == OutputFormat::json) return std::make_unique<JsonReporter>(out, time, lines);
    return std::make_unique<TextReporter>(out, time, lines);
}

}  // namespace portwatch
