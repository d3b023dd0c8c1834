// SPDX-License-Identifier: Apache-2.0
#include "base/printable_text.h"

#include <algorithm>

namespace portwatch {
namespace {

// Length of the valid UTF-8 sequence starting at raw[i], or 0 (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view raw, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(raw[k]); };
    unsigned char lead = byte(i);
    if (lead < 0x80) return 1;
    std::size_t length;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (i + length > raw.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (std::size_t k = 2; k < length; k++)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    return length;
}

void append_escaped_byte(std::string &out, unsigned char byte) {
    static constexpr char digits[] = "0123456789abcdef";
    out += "\\x";
    out += digits[byte >> 4];
    out += digits[byte & 0xF];
}

// The code point of the valid sequence of `length` bytes at raw[i].
char32_t code_point(std::string_view raw, std::size_t i, std::size_t length) {
    auto byte = [&](std::size_t k) { return char32_t(static_cast<unsigned char>(raw[i + k])); };
    if (length == 1) return byte(0);
    char32_t point = byte(0) & (0xFF >> (length + 1));
    for (std::size_t k = 1; k < length; k++) point = (point << 6) | (byte(k) & 0x3F);
    return point;
}

// What a terminal acts on instead of showing: C0, DEL, C1 (ESC's 8-bit forms) and the
// bidirectional formatting characters that reorder what follows (U+200E-F, U+202A-E,
// U+2066-9).
bool is_control(char32_t point) {
    return point < 0x20 || (point >= 0x7F && point <= 0x9F) || point == 0x200E || point == 0x200F ||
           (point >= 0x202A && point <= 0x202E) || (point >= 0x2066 && point <= 0x2069);
}

// One unit of escaped text: a character as it is, or the \xNN escapes of the bytes that
// are not one (or are a control). Returns the bytes of `raw` it took from `i`.
struct Unit {
    std::string text;
    std::size_t columns = 0;
    bool escaped = false;
};
std::size_t next_unit(std::string_view raw, std::size_t i, bool escape_controls, Unit &unit) {
    unit = {};
    std::size_t length = utf8_sequence_length(raw, i);
    if (length == 0 || (escape_controls && is_control(code_point(raw, i, length)))) {
        std::size_t bytes = std::max<std::size_t>(length, 1);
        for (std::size_t k = 0; k < bytes; k++)
            append_escaped_byte(unit.text, static_cast<unsigned char>(raw[i + k]));
        unit.columns = unit.text.size();
        unit.escaped = true;
        return bytes;
    }
    unit.text = raw.substr(i, length);
    unit.columns = 1;  // East Asian wide characters take 2; not worth a table for a comm
    return length;
}

SafeText escape(std::string_view raw, bool escape_controls) {
    SafeText result;
    Unit unit;
    for (std::size_t i = 0; i < raw.size();) {
        i += next_unit(raw, i, escape_controls, unit);
        result.text += unit.text;
        result.altered |= unit.escaped;
    }
    return result;
}

}  // namespace

bool is_ascii(std::string_view raw) {
    return std::all_of(raw.begin(), raw.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

SafeText utf8_or_escaped(std::string_view raw) {
    if (is_ascii(raw)) return {std::string(raw), false};  // nearly every comm and cgroup path
    return escape(raw, false);
}

std::string printable(std::string_view raw) {
    return escape(raw, true).text;
}

std::string printable_column(std::string_view raw, std::size_t width) {
    std::string text;
    std::size_t columns = 0, kept = 0;  // kept: the columns of `text` when a '+' still fits
    std::string cut;
    Unit unit;
    for (std::size_t i = 0; i < raw.size();) {
        i += next_unit(raw, i, true, unit);
        if (columns + unit.columns > width) {
            text = cut + "+";
            columns = kept + 1;
            break;
        }
        text += unit.text;
        columns += unit.columns;
        if (columns < width) {
            cut = text;
            kept = columns;
        }
    }
    return text + std::string(width - std::min(width, columns), ' ');
}

std::string hex_bytes(std::string_view raw) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char byte : raw) {
        out += digits[byte >> 4];
        out += digits[byte & 0xF];
    }
    return out;
}

}  // namespace portwatch
