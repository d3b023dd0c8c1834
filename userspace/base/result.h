// SPDX-License-Identifier: Apache-2.0
// The one way userspace reports an expected failure (a file that cannot be opened, a
// namespace that is gone, text that does not parse): a Result holds either the value or a
// message that says what failed and why ("/proc: Permission denied"). Exceptions are kept for
// programming errors and for failures that end the run (see capture.h). Header-only and
// host-free, so the pure core may use it too; std::expected would do, but it is C++23.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace portwatch {

// What a failed call returns: `return Failure{"what: why"};`. Converts to any Result.
struct Failure {
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : value_(std::move(value)) {}
    Result(Failure failure) : error_(std::move(failure.message)) {}

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }

    // The value; asking a failure for it is a programming error (std::logic_error).
    T &value() & { return checked(), *value_; }
    const T &value() const & { return checked(), *value_; }
    T &&value() && { return checked(), std::move(*value_); }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T &&operator*() && { return std::move(*this).value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }
    // An explicit fallback: the caller says what stands in for a value that could not be had.
    template <typename U>
    T value_or(U &&fallback) const & {
        return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
    }
    template <typename U>
    T value_or(U &&fallback) && {
        return ok() ? std::move(*value_) : static_cast<T>(std::forward<U>(fallback));
    }

    // Why it failed; "" when ok().
    const std::string &error() const { return error_; }

  private:
    void checked() const {
        if (!ok()) throw std::logic_error("value() of a failed Result: " + error_);
    }

    std::optional<T> value_;
    std::string error_;
};

// Success or why not, for calls that have no value to give.
template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Failure failure) : ok_(false), error_(std::move(failure.message)) {}

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const std::string &error() const { return error_; }

  private:
    bool ok_ = true;
    std::string error_;
};

using Status = Result<void>;

}  // namespace portwatch
