// SPDX-License-Identifier: Apache-2.0
// Pieces of one fuzz input, taken front to back; past the end every piece is empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace portwatch::fuzz {

class FuzzInput {
  public:
    FuzzInput(const std::uint8_t *data, std::size_t size) : rest_(data, size) {}

    bool empty() const { return rest_.empty(); }
    std::uint8_t byte() { return take(1).empty() ? 0 : last_[0]; }
    // A length-prefixed piece: one byte of length (two when `wide`), then that many bytes.
    std::span<const std::uint8_t> piece(bool wide = false) {
        std::size_t length = byte();
        if (wide) length = length << 8 | byte();
        return take(length);
    }
    std::string_view text() {
        auto bytes = piece();
        return {reinterpret_cast<const char *>(bytes.data()), bytes.size()};
    }

  private:
    std::span<const std::uint8_t> take(std::size_t length) {
        length = std::min(length, rest_.size());
        last_ = rest_.first(length);
        rest_ = rest_.subspan(length);
        return last_;
    }

    std::span<const std::uint8_t> rest_;
    std::span<const std::uint8_t> last_;
};

// Aborts the run (libFuzzer keeps the input) when a property of the output fails.
inline void require(bool holds) {
    if (!holds) __builtin_trap();
}

}  // namespace portwatch::fuzz
