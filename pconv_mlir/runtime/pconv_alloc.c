/* pconv-mlir's buffer allocator: the heap functions of MLIR-generated code, with reuse.
 *
 * mlir-opt-22's `finalize-memref-to-llvm{use-generic-functions}` lowers every `memref.alloc`
 * and `memref.dealloc` (the activations between layers, the padded copies of their inputs)
 * to calls of the three functions below instead of malloc and free. A network's forward pass
 * makes the same allocations in the same order on every call, so a freed buffer is kept and
 * handed out again to the next request of exactly its size. With plain malloc, glibc maps each
 * large buffer fresh from the kernel and unmaps it on free, so every call page-faults its
 * whole working set again (about 23,000 faults, a third of the time, on ResNet-50 at 224x224,
 * and the faults serialise threads on the address-space lock).
 *
 *   _mlir_memref_to_llvm_alloc(size)                 a buffer of `size` bytes, 64-byte aligned
 *   _mlir_memref_to_llvm_aligned_alloc(align, size)  the same, aligned to `align` (<= 4096)
 *   _mlir_memref_to_llvm_free(ptr)                   back to the cache (large) or to free()
 *   pconv_release_buffers()                          free every cached buffer
 *
 * Buffers of at least PCONV_CACHE_MIN bytes are cached; smaller ones go straight to malloc,
 * which serves them from its own free lists. The cache holds at most what one call had freed
 * at once per size (one forward pass's working set, plus buffers of sizes that one pass does
 * not reuse); it is released when the library is unloaded. Under AddressSanitizer nothing is
 * cached, so a use after free in generated code is still caught.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC visibility push(hidden)

#define PCONV_CACHE_MIN ((size_t)64 * 1024)
#define PCONV_HEADER 64 /* keeps 64-byte alignment after the header */

#if defined(__SANITIZE_ADDRESS__)
#define PCONV_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PCONV_CACHE 0
#endif
#endif
#ifndef PCONV_CACHE
#define PCONV_CACHE 1
#endif

/* Before each buffer handed out: where the block starts and how big the request was. */
typedef struct block {
  void *base;          /* what malloc returned */
  size_t size;         /* requested bytes: the cache key */
  struct block *next;  /* next cached block while free */
} block;

static block *cached;      /* free blocks, most recently freed first */
static char cache_lock;    /* a spin lock: allocations come from one thread at a time */

static void lock(void) {
  while (__atomic_test_and_set(&cache_lock, __ATOMIC_ACQUIRE)) {
  }
}

static void unlock(void) { __atomic_clear(&cache_lock, __ATOMIC_RELEASE); }

/* Every buffer has its header right before it, small ones too, so free knows its size. */
static void *fresh(size_t alignment, size_t size) {
  if (alignment < PCONV_HEADER) alignment = PCONV_HEADER;
  void *base = malloc(size + alignment + PCONV_HEADER);
  if (base == NULL) return NULL;
  uintptr_t start = ((uintptr_t)base + PCONV_HEADER + alignment - 1) & ~(uintptr_t)(alignment - 1);
  block *header = (block *)start - 1;
  header->base = base;
  header->size = size;
  header->next = NULL;
  return (void *)start;
}

static void *allocate(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096) return NULL;
  if (PCONV_CACHE && size >= PCONV_CACHE_MIN) {
    lock();
    for (block **link = &cached; *link != NULL; link = &(*link)->next) {
      block *found = *link;
      if (found->size == size && ((uintptr_t)(found + 1) & (alignment - 1)) == 0) {
        *link = found->next;
        unlock();
        return found + 1;
      }
    }
    unlock();
  }
  return fresh(alignment, size);
}

void *_mlir_memref_to_llvm_alloc(size_t size) { return allocate(PCONV_HEADER, size); }

void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  return allocate(alignment, size);
}

void _mlir_memref_to_llvm_free(void *ptr) {
  if (ptr == NULL) return;
  block *header = (block *)ptr - 1;
  if (!PCONV_CACHE || header->size < PCONV_CACHE_MIN) {
    free(header->base);
    return;
  }
  lock();
  header->next = cached;
  cached = header;
  unlock();
}

void pconv_release_buffers(void) {
  lock();
  block *list = cached;
  cached = NULL;
  unlock();
  while (list != NULL) {
    block *next = list->next;
    free(list->base);
    list = next;
  }
}

__attribute__((destructor)) static void release_at_unload(void) { pconv_release_buffers(); }

#pragma GCC visibility pop
