#include "projections/list_index.h"

#include <cassert>
#include <cstring>

namespace tokenledger::projections {
namespace {

// Partition and counter tags are part of the stored keys: never reuse. ('a' was the
// all-tokens partition up to version 2; it is now only a counter tag.)
constexpr char kAll = 'a';
constexpr char kByStatus = 's';
constexpr char kByEnvironment = 'e';
constexpr char kByScope = 'c';
constexpr char kCounter = 'n';
constexpr char kCountStatusEnvironment = 'x';
constexpr char kCountStatusScope = 'y';
constexpr char kCountScopeEnvironment = 'z';
constexpr char kCountStatusScopeEnvironment = 'w';

constexpr std::size_t kSeqBytes = 8;

void StoreU64(char* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * (7 - i)));
}

std::uint64_t ReadU64(std::string_view s) {
  assert(s.size() >= 8);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}

// Order-preserving encoding of a signed time: flip the sign bit. 0 stays free for "null",
// which then sorts before every time (first ascending, last descending).
std::uint64_t SortableTime(Micros t) { return static_cast<std::uint64_t>(t) ^ (1ull << 63); }
Micros TimeFromSortable(std::uint64_t v) { return static_cast<Micros>(v ^ (1ull << 63)); }

std::uint64_t SortValue(const core::TokenState& s, SortField field) {
  switch (field) {
    case SortField::kInsertedAt:
      return SortableTime(s.inserted_at);
    case SortField::kStatus:
      return static_cast<std::uint64_t>(s.status);  // active < suspended < revoked
    case SortField::kExpiresAt:
      return SortableTime(s.expires_at);
    case SortField::kLastUsedAt:
      return s.last_used_at ? SortableTime(*s.last_used_at) : 0;
    case SortField::kUpdatedAt:
      return SortableTime(s.updated_at);
    case SortField::kId:
      break;
  }
  return 0;
}

std::string EnvironmentBytes(const std::optional<Id>& environment) {
  return std::string(environment ? environment->Bytes() : Id().Bytes());
}

std::string Partition(const Id& account, char tag, std::string_view value) {
  std::string p(account.Bytes());
  p.push_back(tag);
  p.append(value);
  return p;
}

std::string CountKey(const Id& account, char tag, std::string_view value) {
  std::string k(account.Bytes());
  k.push_back(kCounter);
  k.push_back(tag);
  k.append(value);
  return k;
}

// Account-scoped tokens are the zero environment's, environment and agent tokens their
// environment's; introspection tokens have no place there (a `token_scope=account` list reads
// the zero environment), so they are found through the scope partition only.
bool InEnvironmentPartition(events::TokenScope scope) {
  return scope == events::TokenScope::kAccount || events::ScopeHasEnvironment(scope);
}

std::string StatusByte(core::TokenStatus s) { return std::string(1, static_cast<char>(s)); }
std::string ScopeByte(events::TokenScope s) { return std::string(1, static_cast<char>(s)); }

std::optional<events::TokenScope> ScopeFromByte(char byte) {
  const auto scope = static_cast<events::TokenScope>(static_cast<std::uint8_t>(byte));
  if (events::ParseScope(events::ScopeName(scope)) != scope) return std::nullopt;  // unknown
  return scope;
}

// The partition's length in a key: account + tag + the tag's value.
std::optional<std::size_t> PartitionLength(std::string_view key) {
  if (key.size() <= Id::kBytes) return std::nullopt;
  switch (key[Id::kBytes]) {
    case kByStatus:
    case kByScope:
      return Id::kBytes + 2;
    case kByEnvironment:
      return Id::kBytes + 1 + Id::kBytes;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string_view SortFieldName(SortField field) {
  switch (field) {
    case SortField::kInsertedAt:
      return "inserted_at";
    case SortField::kId:
      return "id";
    case SortField::kStatus:
      return "status";
    case SortField::kExpiresAt:
      return "expires_at";
    case SortField::kLastUsedAt:
      return "last_used_at";
    case SortField::kUpdatedAt:
      return "updated_at";
  }
  return "inserted_at";
}

std::optional<SortField> ParseSortField(std::string_view name) {
  for (SortField f : kAllSortFields)
    if (SortFieldName(f) == name) return f;
  return std::nullopt;
}

ListIndexEntrySet::ListIndexEntrySet(const TokenRow& row) {
  const core::TokenState& s = row.state;
  assert(s.Visible());
  // Values: created_seq, then scope ('s' and 'e' entries) and environment ('s' entries).
  char attributes[kMaxListIndexValueBytes];
  StoreU64(attributes, row.created_seq);
  attributes[kSeqBytes] = static_cast<char>(s.scope);
  std::size_t attributes_size = kSeqBytes + 1;
  if (s.environment_id) {
    std::memcpy(attributes + attributes_size, s.environment_id->Bytes().data(), Id::kBytes);
    attributes_size += Id::kBytes;
  }
  std::uint64_t sort_values[8] = {};
  for (SortField f : kAllSortFields) sort_values[static_cast<int>(f)] = SortValue(s, f);

  auto add = [&](char tag, std::string_view partition_value, std::size_t value_size) {
    for (SortField f : kAllSortFields) {
      if (tag == kByStatus && f == SortField::kStatus) continue;
      assert(size_ < kMaxListIndexEntries);
      Entry& e = entries_[size_++];
      char* k = e.key;
      std::memcpy(k, s.account_id.Bytes().data(), Id::kBytes);
      k += Id::kBytes;
      *k++ = tag;
      if (!partition_value.empty()) {  // memcpy from an empty view's null data() is UB
        std::memcpy(k, partition_value.data(), partition_value.size());
        k += partition_value.size();
      }
      *k++ = static_cast<char>(f);
      if (f != SortField::kId) {
        StoreU64(k, sort_values[static_cast<int>(f)]);
        k += 8;
      }
      std::memcpy(k, s.id.Bytes().data(), Id::kBytes);
      k += Id::kBytes;
      e.key_size = static_cast<std::uint8_t>(k - e.key);
      std::memcpy(e.value, attributes, value_size);
      e.value_size = static_cast<std::uint8_t>(value_size);
    }
  };
  const char status = static_cast<char>(s.status);
  const char scope = static_cast<char>(s.scope);
  const Id environment = s.environment_id.value_or(Id());
  add(kByStatus, {&status, 1}, attributes_size);
  if (InEnvironmentPartition(s.scope)) add(kByEnvironment, environment.Bytes(), kSeqBytes + 1);
  if (s.scope != events::TokenScope::kAccount) add(kByScope, {&scope, 1}, kSeqBytes);
}

std::vector<std::string> ListCountKeys(const TokenRow& row) {
  const core::TokenState& s = row.state;
  assert(s.Visible());
  std::vector<std::string> keys = {
      CountKey(s.account_id, kAll, {}),
      CountKey(s.account_id, kByStatus, StatusByte(s.status)),
      CountKey(s.account_id, kByScope, ScopeByte(s.scope)),
      CountKey(s.account_id, kCountStatusScope, StatusByte(s.status) + ScopeByte(s.scope)),
  };
  if (InEnvironmentPartition(s.scope)) {  // the counters of the partition it is in
    const std::string env = EnvironmentBytes(s.environment_id);
    keys.push_back(CountKey(s.account_id, kByEnvironment, env));
    keys.push_back(CountKey(s.account_id, kCountStatusEnvironment, StatusByte(s.status) + env));
    if (s.environment_id) {  // two scopes share an environment: a filter on both needs these
      keys.push_back(CountKey(s.account_id, kCountScopeEnvironment, ScopeByte(s.scope) + env));
      keys.push_back(CountKey(s.account_id, kCountStatusScopeEnvironment,
                              StatusByte(s.status) + ScopeByte(s.scope) + env));
    }
  }
  return keys;
}

std::optional<TokenRow> ListCountRowOfEntry(std::string_view key, std::string_view value) {
  // The environment partition's `status` entry (its environment, zero for account scope, its
  // status, and in its value its scope), or for a token outside that partition, the scope
  // partition's (its scope, hence no environment, and its status).
  const auto partition = PartitionLength(key);
  if (!partition || key.size() <= *partition ||
      static_cast<SortField>(key[*partition]) != SortField::kStatus) {
    return std::nullopt;
  }
  const std::optional<ListIndexValue> decoded = DecodeListIndexEntry(key, value);
  if (!decoded) return std::nullopt;
  const std::uint64_t status = ReadU64(key.substr(*partition + 1));
  if (status < 1 || status > 3) return std::nullopt;
  TokenRow row;
  row.state.exists = true;
  row.state.account_id = *Id::FromBytes(key.substr(0, Id::kBytes));
  row.state.status = static_cast<core::TokenStatus>(status);
  if (key[Id::kBytes] == kByEnvironment) {
    row.state.scope = *decoded->scope;  // DecodeListIndexEntry checked it fits the environment
    row.state.environment_id = decoded->environment_id;
  } else if (key[Id::kBytes] == kByScope) {
    const auto scope = ScopeFromByte(key[Id::kBytes + 1]);
    if (!scope) return std::nullopt;
    row.state.scope = *scope;
    if (InEnvironmentPartition(row.state.scope)) return std::nullopt;  // counted by its 'e' entry
  } else {
    return std::nullopt;
  }
  return row;
}

void ListRecount::Add(std::string_view key, std::string_view value, Counts& counts) {
  std::optional<TokenRow> row = ListCountRowOfEntry(key, value);
  const auto same_run = [&] {
    const core::TokenState &a = row->state, &b = run_->state;
    return a.account_id == b.account_id && a.status == b.status && a.scope == b.scope &&
           a.environment_id == b.environment_id;
  };
  if (!row || !run_ || !same_run()) Flush(counts);
  if (!row) return;
  if (!run_) run_ = std::move(row);
  ++run_tokens_;
}

void ListRecount::Flush(Counts& counts) {
  if (!run_) return;
  for (std::string& k : ListCountKeys(*run_)) counts[std::move(k)] += run_tokens_;
  run_.reset();
  run_tokens_ = 0;
}

bool IsListCountKey(std::string_view key) {
  return key.size() > Id::kBytes && key[Id::kBytes] == kCounter;
}

std::string EncodeListCount(std::int64_t n) {
  std::string out(8, '\0');
  const auto u = static_cast<std::uint64_t>(n);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(u >> (8 * i));
  return out;
}

std::optional<std::int64_t> DecodeListCount(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  std::uint64_t u = 0;
  for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<std::uint8_t>(bytes[i]);
  return static_cast<std::int64_t>(u);
}

ListPlan PlanList(const Id& account, const ListFilter& filter) {
  ListPlan plan;
  plan.filter = filter;
  const bool account_scope = filter.scope == events::TokenScope::kAccount;
  if (filter.environment_id && filter.scope && !events::ScopeHasEnvironment(*filter.scope)) {
    plan.empty = true;  // tokens of that scope have no environment
    return plan;
  }
  // Account scope is the zero environment. A known environment holds tokens of every scope
  // with an environment (environment, agent_deployment).
  std::optional<std::string> env;
  if (filter.environment_id) env = EnvironmentBytes(filter.environment_id);
  if (account_scope) env = EnvironmentBytes(std::nullopt);

  if (filter.environment_id && filter.scope) {  // a scope with an environment, and that one
    const std::string scope_env = ScopeByte(*filter.scope) + *env;
    plan.check_values = true;
    if (filter.status) {
      const std::string status = StatusByte(*filter.status);
      plan.partitions = {Partition(account, kByStatus, status)};
      plan.count_key = CountKey(account, kCountStatusScopeEnvironment, status + scope_env);
    } else {
      plan.partitions = {Partition(account, kByEnvironment, *env)};
      plan.count_key = CountKey(account, kCountScopeEnvironment, scope_env);
    }
  } else if (filter.status) {
    const std::string status = StatusByte(*filter.status);
    plan.partitions = {Partition(account, kByStatus, status)};
    plan.check_values = filter.scope || filter.environment_id;
    if (env) {
      plan.count_key = CountKey(account, kCountStatusEnvironment, status + *env);
    } else if (filter.scope) {
      plan.count_key = CountKey(account, kCountStatusScope, status + ScopeByte(*filter.scope));
    } else {
      plan.count_key = CountKey(account, kByStatus, status);
    }
  } else if (env) {
    plan.partitions = {Partition(account, kByEnvironment, *env)};
    plan.count_key = CountKey(account, kByEnvironment, *env);
  } else if (filter.scope) {  // another scope than account, any environment
    plan.partitions = {Partition(account, kByScope, ScopeByte(*filter.scope))};
    plan.count_key = CountKey(account, kByScope, ScopeByte(*filter.scope));
  } else {
    for (auto status :
         {core::TokenStatus::kActive, core::TokenStatus::kSuspended, core::TokenStatus::kRevoked}) {
      plan.partitions.push_back(Partition(account, kByStatus, StatusByte(status)));
    }
    plan.count_key = CountKey(account, kAll, {});
  }
  return plan;
}

std::vector<std::string> ListRangePrefixes(const ListPlan& plan, SortField field) {
  assert(!plan.empty && !plan.partitions.empty());
  std::vector<std::string> prefixes;
  prefixes.reserve(plan.partitions.size());
  for (const std::string& partition : plan.partitions) {
    assert(partition.size() > Id::kBytes && partition.size() == plan.partitions[0].size());
    const bool by_status = partition[Id::kBytes] == kByStatus && field == SortField::kStatus;
    std::string prefix = partition;
    prefix.push_back(static_cast<char>(by_status ? SortField::kId : field));
    prefixes.push_back(std::move(prefix));
  }
  return prefixes;
}

bool ListRangesConcatenate(const ListPlan& plan, SortField field) {
  return plan.partitions.size() > 1 && field == SortField::kStatus;
}

std::size_t ListRangeLength(std::string_view key) {
  const auto partition = PartitionLength(key);
  return partition && key.size() > *partition ? *partition + 1 : 0;
}

std::optional<ListIndexValue> DecodeListIndexEntry(std::string_view key, std::string_view value) {
  const auto partition = PartitionLength(key);
  if (!partition || key.size() < *partition + 1 + Id::kBytes) return std::nullopt;
  const auto field = static_cast<SortField>(key[*partition]);
  const std::size_t sort_bytes = field == SortField::kId ? 0 : 8;
  if (key.size() != *partition + 1 + sort_bytes + Id::kBytes) return std::nullopt;
  if (value.size() < kSeqBytes) return std::nullopt;
  ListIndexValue v;
  v.token_id = *Id::FromBytes(key.substr(key.size() - Id::kBytes));
  v.created_seq = ReadU64(value);
  if (field == SortField::kInsertedAt)
    v.inserted_at = TimeFromSortable(ReadU64(key.substr(*partition + 1)));
  if (key[Id::kBytes] == kByStatus) {
    if (value.size() != kSeqBytes + 1 && value.size() != kSeqBytes + 1 + Id::kBytes)
      return std::nullopt;
    v.scope = ScopeFromByte(value[kSeqBytes]);
    if (!v.scope) return std::nullopt;
    if (value.size() > kSeqBytes + 1) v.environment_id = Id::FromBytes(value.substr(kSeqBytes + 1));
  } else if (key[Id::kBytes] == kByEnvironment) {
    if (value.size() != kSeqBytes + 1) return std::nullopt;
    v.scope = ScopeFromByte(value[kSeqBytes]);
    const Id env = *Id::FromBytes(key.substr(Id::kBytes + 1, Id::kBytes));
    if (!env.IsZero()) v.environment_id = env;
    // The zero environment is account scope's; any other, a scope with an environment's.
    if (!v.scope || (*v.scope == events::TokenScope::kAccount) != env.IsZero() ||
        (!env.IsZero() && !events::ScopeHasEnvironment(*v.scope)))
      return std::nullopt;
  } else if (value.size() != kSeqBytes) {
    return std::nullopt;
  }
  return v;
}

bool Matches(const ListPlan& plan, const ListIndexValue& v) {
  if (!plan.check_values) return true;
  if (plan.filter.scope && v.scope != plan.filter.scope) return false;
  if (plan.filter.environment_id && v.environment_id != plan.filter.environment_id) return false;
  return true;
}

}  // namespace tokenledger::projections
