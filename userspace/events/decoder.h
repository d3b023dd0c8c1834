// SPDX-License-Identifier: Apache-2.0
// Ring-buffer records -> typed events. Every record is checked (length, ABI
// version, declared size, enum ranges) before a byte of it is trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "events/event.h"

namespace portwatch {

enum class DecodeError {
    none,
    too_short,      // fewer bytes than a header, or than the record type needs
    bad_version,    // written by a kernel side of another ABI version
    size_mismatch,  // header size disagrees with the bytes received
    unknown_type,   // record type this decoder does not know
    bad_field,      // an enum or family out of range
};

inline constexpr EnumName<DecodeError> kDecodeErrorNames[] = {
    {DecodeError::none, "none"},
    {DecodeError::too_short, "too_short"},
    {DecodeError::bad_version, "bad_version"},
    {DecodeError::size_mismatch, "size_mismatch"},
    {DecodeError::unknown_type, "unknown_type"},
    {DecodeError::bad_field, "bad_field"},
};
std::string_view name_of(DecodeError error);

struct Decoded {
    std::optional<Event> event;
    DecodeError error = DecodeError::none;
};

Decoded decode_record(std::span<const std::uint8_t> bytes);

}  // namespace portwatch
