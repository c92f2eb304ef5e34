#include "tokenledger/id.h"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tokenledger {
namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

// Maps a character to its 5-bit value, or -1 for characters outside the lowercase
// alphabet (upper case and the excluded letters i, l, o, u included).
constexpr std::array<std::int8_t, 256> MakeDecodeTable() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 32; ++i)
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto kDecode = MakeDecodeTable();

// Ten bits to their two characters: an id's text is written two characters per look-up.
constexpr std::array<char, 2048> kPairs = [] {
  std::array<char, 2048> t{};
  for (int i = 0; i < 1024; ++i) {
    t[2 * i] = kAlphabet[i >> 5];
    t[2 * i + 1] = kAlphabet[i & 31];
  }
  return t;
}();

}  // namespace

Id Id::FromParts(std::uint64_t unix_ms, std::uint32_t partition,
                 const std::array<std::uint8_t, 10>& random) {
  std::array<std::uint8_t, kBytes> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(unix_ms >> (8 * (5 - i)));
  for (int i = 0; i < 4; ++i) b[6 + i] = static_cast<std::uint8_t>(partition >> (8 * (3 - i)));
  std::memcpy(b.data() + 10, random.data(), random.size());
  return Id(b);
}

std::optional<Id> Id::Parse(std::string_view text) {
  if (text.size() != kTextLength) return std::nullopt;
  if (text[0] < '0' || text[0] > '7') return std::nullopt;
  std::array<std::uint8_t, kBytes> b{};
  // 32 chars x 5 bits = 160 bits = 20 bytes exactly: process in 8-char / 5-byte groups. No
  // branch per character: -1 (not in the alphabet) is the only value with bit 7 set.
  std::uint8_t invalid = 0;
#pragma GCC unroll 4
  for (std::size_t g = 0; g < 4; ++g) {
    std::uint64_t acc = 0;
#pragma GCC unroll 8
    for (std::size_t i = 0; i < 8; ++i) {
      const auto v =
          static_cast<std::uint8_t>(kDecode[static_cast<unsigned char>(text[g * 8 + i])]);
      invalid |= v;
      acc = (acc << 5) | (v & 31u);
    }
    for (std::size_t i = 0; i < 5; ++i)
      b[g * 5 + i] = static_cast<std::uint8_t>(acc >> (8 * (4 - i)));
  }
  if (invalid & 0x80) return std::nullopt;
  return Id(b);
}

std::optional<Id> Id::FromBytes(std::string_view bytes) {
  if (bytes.size() != kBytes) return std::nullopt;
  std::array<std::uint8_t, kBytes> b{};
  std::memcpy(b.data(), bytes.data(), kBytes);
  return Id(b);
}

std::string Id::ToString() const {
  std::string out;
  AppendText(out);
  return out;
}

void Id::AppendText(std::string& out) const {
  const std::size_t at = out.size();
  out.resize(at + kTextLength);
  WriteText(out.data() + at);
}

void Id::WriteText(char* text) const {
  // Every id in every answer and log line passes here: five bytes become eight characters,
  // two characters per look-up, with the loops unrolled.
#pragma GCC unroll 4
  for (std::size_t g = 0; g < 4; ++g) {
    const std::uint8_t* b = bytes_.data() + g * 5;
    const std::uint64_t acc = (std::uint64_t{b[0]} << 32) | (std::uint64_t{b[1]} << 24) |
                              (std::uint64_t{b[2]} << 16) | (std::uint64_t{b[3]} << 8) | b[4];
#pragma GCC unroll 4
    for (std::size_t i = 0; i < 4; ++i)
      std::memcpy(text + g * 8 + 2 * i, kPairs.data() + 2 * ((acc >> (10 * (3 - i))) & 1023), 2);
  }
}

std::uint64_t Id::UnixMillis() const {
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | bytes_[i];
  return ms;
}

std::uint32_t Id::Partition() const {
  std::uint32_t p = 0;
  for (int i = 6; i < 10; ++i) p = (p << 8) | bytes_[i];
  return p;
}

bool Id::IsZero() const {
  for (auto b : bytes_)
    if (b != 0) return false;
  return true;
}

std::size_t IdHash::operator()(const Id& id) const noexcept {
  // The last 8 bytes are random: a good hash as they are.
  std::uint64_t h = 0;
  std::memcpy(&h, id.Raw().data() + 12, sizeof h);
  return static_cast<std::size_t>(h);
}

void FillSecureRandom(std::uint8_t* out, std::size_t n) {
  while (n > 0) {
    const ssize_t got = getrandom(out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::perror("getrandom");
      std::abort();
    }
    out += got;
    n -= static_cast<std::size_t>(got);
  }
}

namespace {

// The kernel CSPRNG's bytes, fetched in blocks and handed out once each.
struct RandomBuffer {
  static constexpr std::size_t kBytes = 512;
  std::array<std::uint8_t, kBytes> bytes;
  std::size_t used = kBytes;

  void Fill(std::uint8_t* out, std::size_t n) {
    if (n > kBytes) return FillSecureRandom(out, n);
    if (kBytes - used < n) {
      FillSecureRandom(bytes.data(), kBytes);
      used = 0;
    }
    std::memcpy(out, bytes.data() + used, n);
    std::memset(bytes.data() + used, 0, n);  // handed out: not kept in memory
    used += n;
  }
};

}  // namespace

IdGenerator::IdGenerator()
    : IdGenerator(
          [] {
            return static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count());
          },
          [](std::uint8_t* out, std::size_t n) {
            // One buffer per thread, whatever generator asks (copies of one included).
            thread_local RandomBuffer buffer;
            buffer.Fill(out, n);
          }) {}

IdGenerator::IdGenerator(ClockMillis clock, RandomFill random)
    : clock_(std::move(clock)), random_(std::move(random)) {}

Id IdGenerator::Generate() {
  std::uint8_t p[4];
  random_(p, sizeof p);
  const std::uint32_t partition = ((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]}) &
                                  0x3fffffffu;
  return Make(partition);
}

Id IdGenerator::GenerateRelated(const Id& related) { return Make(related.Partition()); }

Id IdGenerator::Make(std::uint32_t partition) {
  std::array<std::uint8_t, 10> random{};
  random_(random.data(), random.size());
  // 46 bits of milliseconds last until the year 4199; mask so the text always starts 0-7.
  const std::uint64_t ms = clock_() & ((std::uint64_t{1} << 46) - 1);
  return Id::FromParts(ms, partition, random);
}

}  // namespace tokenledger
