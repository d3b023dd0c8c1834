// SPDX-License-Identifier: Apache-2.0
// Whatever the decoder accepts, with any process name and cgroup path, through the model and
// out as JSON lines, text lines and the Prometheus exposition: every JSON line parses as
// UTF-8 JSON, and no byte a terminal acts on (C0 but newline, DEL, C1, bidi controls) is in
// any text line or metric.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "events/decoder.h"
#include "output/json_format.h"
#include "output/metrics.h"
#include "model/port_model.h"
#include "output/text_lines.h"
#include "fuzz_input.h"

using namespace portwatch;

namespace {

// The UTF-8 of U+0080..U+009F (C2 80..C2 9F), U+200E/F, U+202A..U+202E, U+2066..U+2069.
bool terminal_control_at(std::string_view text, std::size_t i) {
    auto byte = [&](std::size_t at) { return at < text.size() ? std::uint8_t(text[at]) : 0; };
    std::uint8_t c = byte(i);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
    if (c == 0xc2 && byte(i + 1) >= 0x80 && byte(i + 1) <= 0x9f) return true;
    if (c != 0xe2) return false;
    std::uint8_t second = byte(i + 1), third = byte(i + 2);
    return (second == 0x80 &&
            (third == 0x8e || third == 0x8f || (third >= 0xaa && third <= 0xae))) ||
           (second == 0x81 && third >= 0xa6 && third <= 0xa9);
}

void require_no_terminal_control(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) fuzz::require(!terminal_control_at(text, i));
}

void require_json_line(const std::string &line) {
    fuzz::require(!line.empty() && line.back() == '\n');
    fuzz::require(line.find('\n') == line.size() - 1);
    fuzz::require(!nlohmann::json::parse(line, nullptr, false).is_discarded());
}

void set_owner(Event &event, std::string_view cgroup_path) {
    std::visit(
        [&](auto &e) {
            if constexpr (std::is_same_v<std::decay_t<decltype(e)>, AllocateEvent>)
                e.task.cgroup_path = cgroup_path;
            else
                e.owner.cgroup_path = cgroup_path;
        },
        event);
}

void render(const Warning &warning, const TimeBase &time) {
    require_json_line(json_line(to_json(warning, time)));
    require_no_terminal_control(text_line(warning, time));
}

}  // namespace

// Input: records, each a two-byte length, its bytes and a one-byte-length cgroup path.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    fuzz::FuzzInput input(data, size);
    TimeBase time{1'700'000'000'000'000'000};
    PortModel model(ModelSettings{}, PortModel::fixed_range({40000, 40009}));
    EventCounters counters;
    std::uint64_t last_ns = 0;
    while (!input.empty()) {
        auto record = input.piece(true);
        std::string_view cgroup_path = input.text();
        Decoded decoded = decode_record(record);
        if (!decoded.event) continue;
        Event &event = *decoded.event;
        set_owner(event, cgroup_path);
        std::string line = json_line(event, time);  // streamed: the tree's bytes, no tree
        fuzz::require(line == json_line(to_json(event, time)));
        require_json_line(line);
        require_no_terminal_control(text_line(event, time));
        counters.count(event);
        std::visit([&](const auto &e) { last_ns = std::max(last_ns, e.boot_ns); }, event);
        for (const Warning &warning : model.apply(event)) render(warning, time);
    }
    Report report = model.report(last_ns + 1'000'000'000);
    for (const Warning &warning : model.take_warnings()) render(warning, time);
    require_json_line(json_line(to_json(report, time)));
    require_no_terminal_control(text_report(report, time));
    StatsSnapshot stats;
    MetricsInput metrics{"fuzz", "6.1.0", &report, &stats, &counters, 10, "tracepoint"};
    require_no_terminal_control(render_prometheus(metrics));
    return 0;
}
