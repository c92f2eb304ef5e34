// Identifiers: 160 bits written as 32 lowercase Crockford base32 characters.
//
// Layout (most significant first): 48-bit Unix milliseconds, 32-bit partition (top 2 bits
// zero), 80 random bits. Because the time comes first, ids sort by creation time both as
// bytes and as text. Ids created for an account carry that account's partition, so one
// account's ids cluster together in every index keyed by id.
//
// Thread-safety: Id is a value type. IdGenerator is not thread-safe; give each thread its
// own or guard it.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

class Id {
 public:
  static constexpr std::size_t kBytes = 20;
  static constexpr std::size_t kTextLength = 32;

  // The all-zero id. Never produced by IdGenerator for a real clock; used as "none" in
  // fixed-width keys.
  constexpr Id() = default;
  explicit Id(const std::array<std::uint8_t, kBytes>& bytes) : bytes_(bytes) {}

  // Builds an id from its parts. REQUIRES: unix_ms < 2^46 (so the text starts with 0-7),
  // partition < 2^30.
  static Id FromParts(std::uint64_t unix_ms, std::uint32_t partition,
                      const std::array<std::uint8_t, 10>& random);

  // Strict parse of the text form: exactly 32 characters of the lowercase Crockford
  // alphabet, the first one 0-7 (`^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$`). Returns nullopt
  // on anything else (no case folding, no I/L/O aliases).
  static std::optional<Id> Parse(std::string_view text);

  // Parses 20 raw bytes, as stored in keys. Returns nullopt if the size is wrong.
  static std::optional<Id> FromBytes(std::string_view bytes);

  std::string ToString() const;
  // Appends the text form to `out` (ToString without a string of its own).
  void AppendText(std::string& out) const;
  // Writes the text form to out[0, kTextLength) (no terminating NUL): for writers that sized
  // their buffer beforehand.
  void WriteText(char* out) const;
  std::string_view Bytes() const {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  const std::array<std::uint8_t, kBytes>& Raw() const { return bytes_; }

  std::uint64_t UnixMillis() const;
  std::uint32_t Partition() const;
  bool IsZero() const;

  friend auto operator<=>(const Id&, const Id&) = default;
  friend bool operator==(const Id&, const Id&) = default;

 private:
  std::array<std::uint8_t, kBytes> bytes_{};
};

struct IdHash {
  std::size_t operator()(const Id& id) const noexcept;
};

// Generates ids from an injected clock and random source, so tests are deterministic.
class IdGenerator {
 public:
  using ClockMillis = std::function<std::uint64_t()>;
  using RandomFill = std::function<void(std::uint8_t* out, std::size_t n)>;

  // Production generator: the system clock and the kernel's CSPRNG (getrandom), read 512
  // bytes at a time (an id takes 14: one getrandom call per 36 ids, not two per id).
  IdGenerator();
  IdGenerator(ClockMillis clock, RandomFill random);

  // A new id in a fresh random partition (accounts, environments, admin users).
  Id Generate();
  // A new id in the partition of `related` (a token created for an account).
  Id GenerateRelated(const Id& related);

 private:
  Id Make(std::uint32_t partition);

  ClockMillis clock_;
  RandomFill random_;
};

// Fills `out` from the kernel's CSPRNG. Aborts if the kernel refuses (never expected on
// Linux >= 3.17), because continuing with predictable ids or keys would be worse.
void FillSecureRandom(std::uint8_t* out, std::size_t n);

}  // namespace tokenledger
