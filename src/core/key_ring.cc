#include "src/core/key_ring.h"

#include <algorithm>
#include <cassert>

namespace tokenledger::core {
namespace {

Rejection Reject(ErrorCode code, std::string message) {
  return Rejection{code, std::move(message), {}};
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

void EvolveKeyRing(KeyRingHistory& h, const events::EventEnvelope& e) {
  if (const auto* r = std::get_if<events::SigningKeyRotated>(&e.data)) {
    if (!h.active_kid && !h.original_kid) h.original_kid = r->previous_kid;
    h.active_kid = r->kid;
  } else {
    const auto* t = std::get_if<events::SigningKeyRetired>(&e.data);
    assert(t);
    h.retired.insert(t->kid);
  }
  h.changes.push_back(e);
}

bool ValidKid(std::string_view kid) {
  return !kid.empty() && kid.size() <= 64 && std::all_of(kid.begin(), kid.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string ActiveKid(const KeyRingHistory& h, const std::vector<std::string>& file_kids) {
  assert(h.active_kid || !file_kids.empty());
  return h.active_kid ? *h.active_kid : file_kids.front();
}

std::optional<std::string> OriginalKid(const KeyRingHistory& h,
                                       const std::vector<std::string>& file_kids) {
  if (h.original_kid) return h.original_kid;
  if (h.active_kid) return std::nullopt;  // the first rotation named none
  if (file_kids.empty()) return std::nullopt;
  return file_kids.front();
}

std::optional<Rejection> CheckKeyRingChange(const KeyRingHistory& h,
                                            const std::vector<std::string>& file_kids,
                                            const ChangeKeyRing& change) {
  const std::optional<std::string> active =
      h.active_kid || !file_kids.empty() ? std::optional(ActiveKid(h, file_kids)) : std::nullopt;
  auto used_before = [&](const std::string& kid) {
    if (OriginalKid(h, file_kids) == kid) return true;
    return std::any_of(h.changes.begin(), h.changes.end(), [&](const events::EventEnvelope& e) {
      const auto* r = std::get_if<events::SigningKeyRotated>(&e.data);
      return r && (r->kid == kid || r->previous_kid == kid);
    });
  };
  if (const auto* r = std::get_if<events::SigningKeyRotated>(&change.change)) {
    if (!ValidKid(r->kid))
      return Reject(ErrorCode::kInvalidValue, "kid '" + r->kid + "' is not valid");
    if (!Contains(file_kids, r->kid))
      return Reject(ErrorCode::kNotFound, "the key file holds no key " + r->kid);
    if (h.retired.count(r->kid))
      return Reject(ErrorCode::kInvalidAction, "key " + r->kid + " is retired");
    if (active == r->kid)
      return Reject(ErrorCode::kInvalidAction, "key " + r->kid + " is already active");
    if (used_before(r->kid))
      return Reject(ErrorCode::kInvalidAction,
                    "key " + r->kid + " was active before; kids are not reused");
    if (r->previous_kid != active)
      return Reject(ErrorCode::kInvalidAction,
                    "the rotation must name the active key as the previous one");
    return std::nullopt;
  }
  const auto& t = std::get<events::SigningKeyRetired>(change.change);
  const bool known = Contains(file_kids, t.kid) || used_before(t.kid);
  if (!known) return Reject(ErrorCode::kNotFound, "no key " + t.kid + " in the key ring");
  if (h.retired.count(t.kid))
    return Reject(ErrorCode::kInvalidAction, "key " + t.kid + " is already retired");
  if (active == t.kid)
    return Reject(
        ErrorCode::kInvalidAction,
        "key " + t.kid + " is the active key: rotate to a new one first (tokenledger keys rotate)");
  return std::nullopt;
}

}  // namespace tokenledger::core
