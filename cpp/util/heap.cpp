#include "util/heap.h"

#include <cstdlib>  // defines __GLIBC__ where it applies

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace wren {

void release_free_heap() {
#if defined(__GLIBC__)
  ::malloc_trim(0);  // every arena, not only the main one (glibc >= 2.8)
#endif
}

}  // namespace wren
