#pragma once
// Giving freed heap memory back to the operating system.
//
// A model's tokenizer, scratch buffers and KV caches come from the C heap. When the model is closed
// glibc keeps most of those pages as free memory of the process (here ~110-150 MB after closing five
// small models) and, because later rounds of loading fragment the heap differently, the resident
// size after close can creep upward from one load/close cycle to the next though nothing leaks.
// Trimming once, when a large owner goes away, returns those pages.

namespace wren {

// Returns free heap pages to the OS (glibc malloc_trim); a no-op elsewhere.
void release_free_heap();

// A member that trims the heap when its owner is destroyed. Declare it first, so it is destroyed
// last, after every other member has freed its memory.
struct HeapTrimOnDestroy {
  HeapTrimOnDestroy() = default;
  HeapTrimOnDestroy(const HeapTrimOnDestroy&) = delete;
  HeapTrimOnDestroy& operator=(const HeapTrimOnDestroy&) = delete;
  ~HeapTrimOnDestroy() { release_free_heap(); }
};

}  // namespace wren
