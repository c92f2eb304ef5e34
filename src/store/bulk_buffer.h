// BulkBuffer: the byte buffer of the bulk paths (rebuild, import, verify): the temporary sort's
// chunks and the SST writers' files, tens of megabytes each, filled once and then reused or
// given back.
//
// Why not std::string: glibc serves blocks this large with mmap, in 4 KiB pages, so every
// fresh buffer costs a page fault per 4 KiB on first touch. On this project's virtual
// machines a fault costs several microseconds: a 1.15M-event rebuild took ~100,000 of them,
// ~9% of its CPU (perf: exc_page_fault under the buffers' memcpy). HugePageAllocator maps
// blocks of at least kHugePageBytes itself and asks the kernel for transparent huge pages
// (MADV_HUGEPAGE; the systems' default THP mode is `madvise`), so a buffer faults once per
// 2 MiB. Where THP is off the advice is ignored and the buffer behaves as before.
// Smaller blocks go to operator new. Memory: a huge page is only backed once touched, and a
// block is rounded up to whole huge pages (at most 2 MiB more than asked; a std::string asks
// for its capacity + 1, so reserve a whole number of huge pages less one byte). Every
// translation unit that passes these buffers around must be built with the same sanitizer
// flags (kHugePageAllocMinBytes): the whole build is, in every configuration of ours.
// Internal to src/store.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

namespace tokenledger::store {

inline constexpr std::size_t kHugePageBytes = 2u << 20;
// Under AddressSanitizer every block goes to operator new, which ASan checks: a mapping of our
// own would hide overflows of these buffers from the sanitizer stage of CI.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TOKENLEDGER_BULK_BUFFER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TOKENLEDGER_BULK_BUFFER_ASAN)
inline constexpr std::size_t kHugePageAllocMinBytes = SIZE_MAX;
#else
inline constexpr std::size_t kHugePageAllocMinBytes = kHugePageBytes;
#endif

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  static std::size_t MappedBytes(std::size_t n) {
    return (n * sizeof(T) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  }
  T* allocate(std::size_t n) {
    if (n * sizeof(T) < kHugePageAllocMinBytes)
      return static_cast<T*>(::operator new(n * sizeof(T)));
    const std::size_t bytes = MappedBytes(n);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, bytes, MADV_HUGEPAGE);  // advice: no huge pages (THP off) is not an error
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    if (n * sizeof(T) < kHugePageAllocMinBytes) {
      ::operator delete(p);
      return;
    }
    ::munmap(p, MappedBytes(n));
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
};

// A std::string whose large buffers are huge-page backed (above).
using BulkBuffer = std::basic_string<char, std::char_traits<char>, HugePageAllocator<char>>;

}  // namespace tokenledger::store
