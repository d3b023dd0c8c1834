// SPDX-License-Identifier: Apache-2.0
// The ring-buffer record decoder on any bytes: it must never read past them, and what it
// accepts must be in range.
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "events/decoder.h"
#include "fuzz_input.h"

using namespace portwatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    Decoded decoded = decode_record(std::span(data, size));
    fuzz::require(decoded.event.has_value() == (decoded.error == DecodeError::none));
    if (!decoded.event) return 0;
    std::visit(
        [](const auto &event) {
            fuzz::require(event.sock.family == Family::ipv4 || event.sock.family == Family::ipv6);
            fuzz::require(event.sock.proto == Proto::tcp || event.sock.proto == Proto::udp);
        },
        *decoded.event);
    return 0;
}
