// SPDX-License-Identifier: Apache-2.0
// One name table per enum: printing, parsing and the command line's choices read the same list.
// A table gives each value its printed name first; aliases a parser also accepts may follow.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portwatch {

template <typename Enum>
struct EnumName {
    Enum value;
    std::string_view name;
};

// The printed name of `value`: its first entry in `table`.
template <typename Enum, std::size_t N>
constexpr std::string_view name_in(const EnumName<Enum> (&table)[N], Enum value) {
    for (const EnumName<Enum> &entry : table)
        if (entry.value == value) return entry.name;
    return "unknown";
}

template <typename Enum, std::size_t N>
constexpr std::optional<Enum> value_named(const EnumName<Enum> (&table)[N], std::string_view name) {
    for (const EnumName<Enum> &entry : table)
        if (entry.name == name) return entry.value;
    return std::nullopt;
}

// Every name, aliases included, in the table's order (the command line's choices).
template <typename Enum, std::size_t N>
std::vector<std::string> names_in(const EnumName<Enum> (&table)[N]) {
    std::vector<std::string> names;
    for (const EnumName<Enum> &entry : table) names.emplace_back(entry.name);
    return names;
}

template <typename Enum, std::size_t N>
std::map<std::string, Enum> values_by_name(const EnumName<Enum> (&table)[N]) {
    std::map<std::string, Enum> by_name;
    for (const EnumName<Enum> &entry : table) by_name.emplace(entry.name, entry.value);
    return by_name;
}

}  // namespace portwatch
