#include "tokenledger/thread_name.h"

#include <pthread.h>

#include <cstring>

namespace tokenledger {

void NameThisThread(const char* name) {
  constexpr std::size_t kMaxNameBytes = 15;  // TASK_COMM_LEN - 1
  char cut[kMaxNameBytes + 1] = {};
  std::strncpy(cut, name, kMaxNameBytes);
  pthread_setname_np(pthread_self(), cut);
}

}  // namespace tokenledger
