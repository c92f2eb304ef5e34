// The account list index (projection token_list_index v2): what makes a list page cost
// O(page size), whatever the account's size, sort and filter.
//
// Index entries. For each visible token, one key per sort field in each *partition* it
// belongs to:
//
//   account (20) | partition | field tag (1) | sort value (8, none for `id`) | token id (20)
//
//   partition 's' status (1)           tokens of one status (no `status` field: all equal)
//             'e' environment id (20)  tokens of one environment (environment and
//                                      agent_deployment scope); all zero: account scope
//                                      (introspection tokens, which have no environment and
//                                      are not account-scoped, are not in it)
//             'c' scope (1)            tokens of one scope, every scope but account
//
// so that one account's tokens matching a filter, ordered by any field with ties broken by
// id, are one contiguous key range read forwards (asc) or backwards (desc) — or, without any
// filter, the merge of the three status partitions' ranges (sorted by status: those ranges
// one after the other). There is no all-tokens partition: it would be a fourth copy of every
// sort field, rewritten on every status change for nothing the merge cannot do. Values hold
// created_seq (8, the snapshot filter), in 's' and 'e' entries the token's scope (1), and in
// 's' entries its environment (20, scopes with one): the attributes that never change, so a
// status change rewrites only entries whose key changes.
//
// Counters. `account (20) | 'n' | counter` keys hold how many visible tokens fall in each
// filter combination (int64, little-endian, maintained with the add merge operator in the
// same batch as the entries), so item_count is one read:
//   'a'  all             's' status          'e' environment (zero: account scope)
//   'c'  scope           'x' status + env    'y' status + scope
//   'z'  scope + env     'w' status + scope + env   (tokens with an environment only)
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "projections/token_details.h"

namespace tokenledger::projections {

// Version history (never reuse a number):
//   1  one entry per sort field, the value carrying status, scope, environment, created_seq
//   2  partitions per filter and per-filter counters
//   3  no all-tokens partition 'a' (above): 11 entries per token instead of 17, and a status
//      change writes 20 keys instead of 24. Introspection tokens (scope 3) came later, in
//      's' and 'c' only: no ledger held one before, so existing v3 indexes stay valid.
//   4  agent_deployment tokens (scope 4) share their environment's 'e' partition with
//      environment tokens: 'e' values carry the scope, and the 'z'/'w' counters count a filter
//      on scope and environment together
inline constexpr ProjectionInfo kTokenListIndex{"token_list_index", 4};

// Field tags are part of the stored keys: never renumber.
enum class SortField : std::uint8_t {
  kInsertedAt = 1,
  kId = 2,
  kStatus = 3,
  kExpiresAt = 4,
  kLastUsedAt = 5,
  kUpdatedAt = 6,
};
inline constexpr SortField kAllSortFields[] = {SortField::kInsertedAt, SortField::kId,
                                               SortField::kStatus,     SortField::kExpiresAt,
                                               SortField::kLastUsedAt, SortField::kUpdatedAt};

std::string_view SortFieldName(SortField field);
std::optional<SortField> ParseSortField(std::string_view name);

// The most entries one token has: every field in 'e' and 'c', all but `status` in 's'.
inline constexpr std::size_t kMaxListIndexEntries = 3 * std::size(kAllSortFields) - 1;
// The longest entry key (an 'e' entry with a sort value) and value (an 's' entry of a token
// with an environment).
inline constexpr std::size_t kMaxListIndexKeyBytes = 20 + 1 + 20 + 1 + 8 + 20;
inline constexpr std::size_t kMaxListIndexValueBytes = 8 + 1 + 20;

// Every index entry of a visible row, in a fixed order (so two rows' entries can be compared
// pairwise: same position, same partition and field when the partition did not change), in
// fixed-size buffers: every write and the bulk tools (verify, rebuild) build 11-17 per token,
// so it allocates nothing.
class ListIndexEntrySet {
 public:
  struct Entry {
    std::uint8_t key_size = 0;
    std::uint8_t value_size = 0;
    char key[kMaxListIndexKeyBytes];
    char value[kMaxListIndexValueBytes];
    std::string_view Key() const { return {key, key_size}; }
    std::string_view Value() const { return {value, value_size}; }
  };
  // REQUIRES: row.state.Visible().
  explicit ListIndexEntrySet(const TokenRow& row);
  std::size_t size() const { return size_; }
  const Entry& operator[](std::size_t i) const { return entries_[i]; }
  const Entry* begin() const { return entries_; }
  const Entry* end() const { return entries_ + size_; }

 private:
  Entry entries_[kMaxListIndexEntries];
  std::size_t size_ = 0;
};

// The counters a visible row adds one to.
std::vector<std::string> ListCountKeys(const TokenRow& row);
bool IsListCountKey(std::string_view key);
// What one stored entry counts, so that the counters can be recounted from the index alone:
// for the one entry per token whose key holds every filter attribute (the environment
// partition's `status` entry: environment, hence scope, and status; for a token outside that
// partition, the scope partition's), that token as the row ListCountKeys takes (account,
// status, scope and environment set; nothing else); nullopt for every other entry and for
// malformed ones. These entries sort before the account's counters, so a writer in key order
// has the counts when it reaches them.
std::optional<TokenRow> ListCountRowOfEntry(std::string_view key, std::string_view value);

// Recounts the counters from index entries read in key order. The entries that count come in
// runs of one account, status, scope and environment (an environment partition's `status`
// range is in status order), so a run costs one ListCountKeys, not one per token: eight
// strings per token were ~7% of verify. Where two scopes share an environment (environment and
// agent_deployment tokens; the scope is in the value, not the key), their entries interleave
// by token id and runs can be one token long: slower, never wrong. Thread-safety: one thread at
// a time.
class ListRecount {
 public:
  using Counts = std::map<std::string, std::int64_t>;
  // Counts the entry if it counts its token. An entry that does not extend the current run
  // adds that run to `counts` first.
  void Add(std::string_view key, std::string_view value, Counts& counts);
  // Adds the current run to `counts`: before reading them, or to count into another map.
  void Flush(Counts& counts);

 private:
  std::optional<TokenRow> run_;  // the run's first entry as a row
  std::int64_t run_tokens_ = 0;
};
std::string EncodeListCount(std::int64_t n);
// nullopt unless exactly 8 bytes.
std::optional<std::int64_t> DecodeListCount(std::string_view bytes);

struct ListFilter {
  std::optional<core::TokenStatus> status;
  std::optional<events::TokenScope> scope;
  std::optional<Id> environment_id;
};

// How to answer a list query: which partitions hold the matches (one, or without a filter
// the three status partitions in status order), whether the entries read from them still need
// checking against the filter, and which counter holds item_count.
struct ListPlan {
  bool empty = false;  // the filter contradicts itself (account scope + environment)
  std::vector<std::string> partitions;  // each: account | partition tag | partition value
  std::string count_key;                // item_count of the current state
  bool check_values = false;  // the partitions hold entries the filter excludes: use Matches()
  ListFilter filter;
};
ListPlan PlanList(const Id& account_id, const ListFilter& filter);

// The key prefixes of a plan's entries ordered by `field`, one per partition, all of the same
// length. Within one status, `status` order is `id` order (ties are broken by id), and that
// is the range returned for it.
// REQUIRES: !plan.empty.
std::vector<std::string> ListRangePrefixes(const ListPlan& plan, SortField field);

// How the ranges of several partitions make one sorted sequence: one after the other, in the
// order given (descending: reversed), when the plan spans the status partitions and sorts by
// status; otherwise merged by the key bytes after the prefix (sort value, then token id).
bool ListRangesConcatenate(const ListPlan& plan, SortField field);

struct ListIndexValue {
  Id token_id;
  std::uint64_t created_seq = 0;
  Micros inserted_at = 0;                   // only when decoded from an inserted_at entry
  std::optional<events::TokenScope> scope;  // 's' and 'e' entries
  std::optional<Id> environment_id;         // 's' and 'e' entries of tokens with one
};

// The length of an entry key's range prefix: account | partition | field tag, the prefix its
// sort value and token id follow; 0 for a counter or a malformed key. New entries of one range
// mostly land next to the one before (`inserted_at` and `updated_at` are the time of the
// write), which the store's memtable insert hints use.
std::size_t ListRangeLength(std::string_view key);

// Decodes an index entry (not a counter); nullopt if it is not a well-formed entry.
std::optional<ListIndexValue> DecodeListIndexEntry(std::string_view key, std::string_view value);

// Whether a decoded entry read from plan.prefix's range passes the plan's filter.
bool Matches(const ListPlan& plan, const ListIndexValue& value);

}  // namespace tokenledger::projections
