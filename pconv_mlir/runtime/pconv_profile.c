/* pconv-mlir's layer profiler: the runtime side of the pass pconv-profile-layers.
 *
 * Generated code calls pconv_layer_begin(i) / pconv_layer_end(i) around layer i; this file
 * adds up the wall time between the two, per layer, on a monotonic clock.
 *
 *   pconv_layer_seconds(out, n)   copies the first n totals (seconds) to out; returns how many
 *                                 layers have been seen
 *   pconv_layer_reset()           zeroes the totals
 *
 * Only those two are exported from a shared library; the generated code binds to its own
 * pconv_layer_begin/end.
 */

#include <stdint.h>
#include <string.h>
#include <time.h>

#define PCONV_EXPORT __attribute__((visibility("default")))
#pragma GCC visibility push(hidden)

#define PCONV_MAX_LAYERS 4096

static double pconv_totals[PCONV_MAX_LAYERS];
static double pconv_started[PCONV_MAX_LAYERS];
static int64_t pconv_seen = 0;

static double pconv_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void pconv_layer_begin(int64_t layer) {
  if (layer < 0 || layer >= PCONV_MAX_LAYERS) return;
  pconv_started[layer] = pconv_now();
}

void pconv_layer_end(int64_t layer) {
  if (layer < 0 || layer >= PCONV_MAX_LAYERS) return;
  pconv_totals[layer] += pconv_now() - pconv_started[layer];
  if (layer + 1 > pconv_seen) pconv_seen = layer + 1;
}

PCONV_EXPORT int64_t pconv_layer_seconds(double *out, int64_t n) {
  if (n > PCONV_MAX_LAYERS) n = PCONV_MAX_LAYERS;
  if (n > 0) memcpy(out, pconv_totals, (size_t)n * sizeof(double));
  return pconv_seen;
}

PCONV_EXPORT void pconv_layer_reset(void) {
  memset(pconv_totals, 0, sizeof pconv_totals);
  pconv_seen = 0;
}

#pragma GCC visibility pop
