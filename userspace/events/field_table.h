// SPDX-License-Identifier: Apache-2.0
// The pieces of an event's field table (event.h): one entry per field, in output order, saying
// its JSON key, how to read it from the event, where the decoder copies it from in the record,
// and what the text line shows of it. The decoder (decoder.cpp), the JSON writer
// (output/json_format.cpp) and the text line (output/text_lines.cpp) walk the same table.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace portwatch {

// Field values that are more than a number, a bool or a named enum.
struct RawText {  // bytes as a process set them: `key`, and `key_hex` when not valid UTF-8
    std::string_view bytes;
};
struct ErrnoName {  // "EADDRINUSE"
    int error = 0;
};
template <class Value>
struct IfSet {  // left out of the line when not set (a std::optional is written as null)
    bool set = false;
    Value value{};
};

struct NotInRecord {};  // derived from other fields, or joined in user space

// What the text line shows of a field beyond its columns (TIME ... REMOTE) and their DETAIL
// words: key_value adds "key=value" to DETAIL, for a field with no column of its own.
enum class Detail { no, key_value };

// `get`: a member pointer (the decoder fills it when `raw` says from where) or a function of
// the object (a derived value). `raw`: a member pointer of the record, or a function of it.
template <class Get, class Raw = NotInRecord>
struct Field {
    std::string_view key;
    Get get;
    Raw raw = {};
    Detail detail = Detail::no;
};

// A member struct whose own table is written in place (the socket's fields, the task's...).
// `get` may give a pointer: null writes every field of the table as null.
template <class Get, class Table, class Raw = NotInRecord>
struct Group {
    Get get;
    const Table &fields;
    Raw raw = {};
};

// A member the decoder fills from the record that the lines show through other entries (the
// errno of a failure, written as `errno` and `error` and only for a failure).
template <class Member, class Raw>
struct Copy {
    Member get;
    Raw raw;
};

// Spelled out for clang 14 (the fuzz harnesses), which does not deduce an aggregate's arguments.
template <class Get>
Field(std::string_view, Get) -> Field<Get>;
template <class Get, class Raw>
Field(std::string_view, Get, Raw) -> Field<Get, Raw>;
template <class Get, class Raw>
Field(std::string_view, Get, Raw, Detail) -> Field<Get, Raw>;
template <class Get, class Table>
Group(Get, const Table &) -> Group<Get, Table>;
template <class Get, class Table, class Raw>
Group(Get, const Table &, Raw) -> Group<Get, Table, Raw>;
template <class Member, class Raw>
Copy(Member, Raw) -> Copy<Member, Raw>;

template <class Entry>
inline constexpr bool kIsGroup = false;
template <class Get, class Table, class Raw>
inline constexpr bool kIsGroup<Group<Get, Table, Raw>> = true;

template <class Entry>
inline constexpr bool kIsCopy = false;
template <class Member, class Raw>
inline constexpr bool kIsCopy<Copy<Member, Raw>> = true;

template <class Entry>
inline constexpr bool kFromRecord = !std::is_same_v<decltype(Entry::raw), NotInRecord>;

template <class Table, class Visit, std::size_t... Index>
[[gnu::always_inline]] constexpr void visit_in_order(const Table &table, Visit &visit,
                                                     std::index_sequence<Index...>) {
    (visit(std::get<Index>(table)), ...);
}

template <class Table, class Visit, std::size_t... Index>
[[gnu::always_inline]] constexpr bool visit_while_true(const Table &table, Visit &visit,
                                                       std::index_sequence<Index...>) {
    return (visit(std::get<Index>(table)) && ...);
}

template <class Table>
using IndexesOf = std::make_index_sequence<std::tuple_size_v<Table>>;

// Calls visit(entry) for each entry of `table`, in order. Always inlined: the walk is the line
// per event's hot path (output/json_format.cpp), where it costs what hand-written calls did.
template <class Table, class Visit>
[[gnu::always_inline]] constexpr void for_each_field(const Table &table, Visit &&visit) {
    visit_in_order(table, visit, IndexesOf<Table>{});
}

// Calls visit(entry) in order while it returns true; false when one did not.
template <class Table, class Visit>
constexpr bool all_fields(const Table &table, Visit &&visit) {
    return visit_while_true(table, visit, IndexesOf<Table>{});
}

template <class Object, class Entry>
decltype(auto) value_of(const Object &object, const Entry &entry) {
    return std::invoke(entry.get, object);
}

// For a Group entry: present(member) with the member of `object` it names, or absent() when its
// getter gives a null pointer (an owner nobody knows).
template <class Object, class Entry, class Present, class Absent>
[[gnu::always_inline]] inline void visit_group(const Object &object, const Entry &entry,
                                               Present &&present, Absent &&absent) {
    const auto &member = value_of(object, entry);
    if constexpr (std::is_pointer_v<std::remove_cvref_t<decltype(member)>>) {
        if (member)
            present(*member);
        else
            absent();
    } else {
        present(member);
    }
}

}  // namespace portwatch
