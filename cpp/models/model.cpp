#include "models/model.h"

#include "util/errors.h"

namespace wren {

void Model::hidden_states(const int32_t*, int64_t, int64_t, int64_t, KvCache&, float*, bool, const CancelFn&) {
  throw UnsupportedError(str_cat("architecture '", info_.architecture,
                                 "' does not provide hidden states (embeddings) yet"));
}

}  // namespace wren
