// SPDX-License-Identifier: Apache-2.0
// Bytes the kernel or a process supplied (a comm, a cgroup path) as text that is always safe to
// print, and snprintf into a std::string.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace portwatch {

// Valid UTF-8 sequences stay as they are; every byte that is not part of one
// becomes the four characters \xNN. `altered` says whether that happened.
struct SafeText {
    std::string text;
    bool altered = false;
};
SafeText utf8_or_escaped(std::string_view raw);
// ASCII is UTF-8 as it is: utf8_or_escaped() would only copy it.
bool is_ascii(std::string_view raw);

// For a terminal column: as above, and control characters become \xNN too.
std::string printable(std::string_view raw);
// printable() in a column `width` characters wide: padded with spaces, or cut between two
// characters (never inside an escape) and ended with '+' when longer.
std::string printable_column(std::string_view raw, std::size_t width);

std::string hex_bytes(std::string_view raw);

// snprintf into a std::string.
std::string format_text(const char *pattern, auto... args) {
    int length = std::snprintf(nullptr, 0, pattern, args...);
    std::string text(length > 0 ? std::size_t(length) : 0, '\0');
    std::snprintf(text.data(), text.size() + 1, pattern, args...);
    return text;
}

}  // namespace portwatch
