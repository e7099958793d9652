/* pconv-mlir's OpenMP runtime: the part of the LLVM OpenMP (libomp) ABI that MLIR's `omp`
 * dialect lowering calls, on a small pool of POSIX threads.
 *
 * Generated code marks its parallel loops `scf.parallel`; mlir-opt-22's convert-scf-to-openmp
 * and LLVM's OpenMPIRBuilder turn each into `__kmpc_fork_call` of an outlined function whose
 * work-sharing loop asks `__kmpc_for_static_init_8u` for its iterations. This file implements
 * exactly those entry points, so a library needs neither libomp nor libgomp: it links and runs
 * the same way on the host and statically for aarch64 under qemu.
 *
 *   pconv_set_num_threads(n)   threads for the next parallel regions (default: the machine's
 *                              cores, or PCONV_NUM_THREADS)
 *   pconv_get_num_threads()
 *
 * A parallel region runs on the calling thread plus n - 1 pooled workers, which sleep on a
 * condition variable between regions. A region started inside another (or while one is
 * running on another thread) runs on the calling thread alone. Loops are split statically in
 * contiguous chunks, the default `schedule(static)`.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Nothing here is exported from a shared library: the generated code binds to these
 * definitions, never to another libomp (or another pconv library) loaded in the same process.
 * A library exports `<name>_set_threads` instead (see pconv_mlir.runtime.driver). */
#pragma GCC visibility push(hidden)

#define PCONV_MAX_THREADS 256

typedef void (*pconv_microtask)(int32_t *gtid, int32_t *btid, void *arg);

static struct {
  pthread_mutex_t lock;
  pthread_cond_t start, done;
  pthread_barrier_t barrier;
  int started;          /* workers created */
  int workers;          /* pooled workers created so far */
  int wanted;           /* threads asked for (0: not yet decided) */
  int team;             /* threads in the running region */
  unsigned long epoch;  /* bumped when a region starts */
  int finished;         /* workers done with the current region */
  int busy;             /* a region is running */
  pconv_microtask task;
  void *arg;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

static __thread int32_t pconv_thread_id = 0; /* this thread's number in its team */
static __thread int32_t pconv_team = 1;      /* the size of the team this thread runs in */
static __thread int pconv_in_region = 0;

static int default_threads(void) {
  const char *env = getenv("PCONV_NUM_THREADS");
  if (env && atoi(env) > 0) return atoi(env);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (int)cores : 1;
}

void pconv_set_num_threads(int n) {
  pthread_mutex_lock(&pool.lock);
  pool.wanted = n < 1 ? 1 : (n > PCONV_MAX_THREADS ? PCONV_MAX_THREADS : n);
  pthread_mutex_unlock(&pool.lock);
}

int pconv_get_num_threads(void) {
  pthread_mutex_lock(&pool.lock);
  if (pool.wanted == 0) pool.wanted = default_threads();
  int n = pool.wanted;
  pthread_mutex_unlock(&pool.lock);
  return n;
}

static void *worker(void *index) {
  int32_t id = (int32_t)(intptr_t)index;
  unsigned long seen = 0;
  pconv_thread_id = id;
  for (;;) {
    pthread_mutex_lock(&pool.lock);
    while (pool.epoch == seen || id >= pool.team) {
      if (pool.epoch != seen) seen = pool.epoch; /* a region without me */
      pthread_cond_wait(&pool.start, &pool.lock);
    }
    seen = pool.epoch;
    pconv_microtask task = pool.task;
    void *arg = pool.arg;
    pthread_mutex_unlock(&pool.lock);

    int32_t gtid = id, btid = id;
    pconv_in_region = 1;
    pconv_team = pool.team;
    task(&gtid, &btid, arg);
    pconv_in_region = 0;

    pthread_mutex_lock(&pool.lock);
    if (++pool.finished == pool.team - 1) pthread_cond_signal(&pool.done);
    pthread_mutex_unlock(&pool.lock);
  }
  return NULL;
}

/* Make sure `team - 1` workers exist; returns the team size actually available. */
static int grow_pool(int team) {
  while (pool.workers < team - 1) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, (void *)(intptr_t)(pool.workers + 1)) != 0) break;
    pthread_detach(thread);
    pool.workers++;
  }
  return pool.workers + 1 < team ? pool.workers + 1 : team;
}

typedef struct ident ident_t;

int32_t __kmpc_global_thread_num(ident_t *loc) {
  (void)loc;
  return pconv_thread_id;
}

void __kmpc_fork_call(ident_t *loc, int32_t argc, pconv_microtask task, ...) {
  (void)loc;
  va_list args;
  va_start(args, task);
  void *arg = argc > 0 ? va_arg(args, void *) : NULL;
  va_end(args);
  if (argc > 1) { /* LLVM passes the shared variables as one struct */
    fprintf(stderr, "pconv_omp: __kmpc_fork_call with %d arguments is not supported\n", argc);
    abort();
  }

  int team = pconv_get_num_threads();
  pthread_mutex_lock(&pool.lock);
  if (team <= 1 || pconv_in_region || pool.busy) {
    pthread_mutex_unlock(&pool.lock);
    /* Serialised: a team of one on this thread. */
    int outer = pconv_in_region;
    int32_t saved_id = pconv_thread_id, saved_team = pconv_team;
    int32_t gtid = 0, btid = 0;
    pconv_thread_id = 0;
    pconv_team = 1;
    pconv_in_region = 1;
    task(&gtid, &btid, arg);
    pconv_in_region = outer;
    pconv_thread_id = saved_id;
    pconv_team = saved_team;
    return;
  }
  team = grow_pool(team);
  pool.busy = 1;
  pool.team = team;
  pool.task = task;
  pool.arg = arg;
  pool.finished = 0;
  pthread_barrier_init(&pool.barrier, NULL, (unsigned)team);
  pool.epoch++;
  pthread_cond_broadcast(&pool.start);
  pthread_mutex_unlock(&pool.lock);

  int32_t gtid = 0, btid = 0;
  pconv_thread_id = 0;
  pconv_team = team;
  pconv_in_region = 1;
  task(&gtid, &btid, arg);
  pconv_in_region = 0;
  pconv_team = 1;

  pthread_mutex_lock(&pool.lock);
  while (pool.finished < team - 1) pthread_cond_wait(&pool.done, &pool.lock);
  pthread_barrier_destroy(&pool.barrier);
  pool.busy = 0;
  pool.team = 1;
  pthread_mutex_unlock(&pool.lock);
}

void __kmpc_barrier(ident_t *loc, int32_t gtid) {
  (void)loc;
  (void)gtid;
  if (pconv_in_region && pconv_team > 1) pthread_barrier_wait(&pool.barrier);
}

/* Static schedule, no chunk: thread t of T gets one contiguous share of [*lower, *upper]
 * (inclusive bounds, step `incr`), the first `trips % T` threads one iteration more. */
void __kmpc_for_static_init_8u(ident_t *loc, int32_t gtid, int32_t schedule, int32_t *last,
                               uint64_t *lower, uint64_t *upper, int64_t *stride, int64_t incr,
                               int64_t chunk) {
  (void)loc;
  (void)schedule;
  (void)chunk;
  int64_t team = pconv_in_region ? pconv_team : 1;
  int64_t t = team > 1 ? pconv_thread_id : 0;
  (void)gtid;
  uint64_t trips = (incr > 0 && *upper >= *lower) ? (*upper - *lower) / (uint64_t)incr + 1 : 0;
  uint64_t share = trips / (uint64_t)team, extra = trips % (uint64_t)team;
  uint64_t first = (uint64_t)t * share + ((uint64_t)t < extra ? (uint64_t)t : extra);
  uint64_t count = share + ((uint64_t)t < extra ? 1 : 0);
  uint64_t begin = *lower;
  *stride = (int64_t)trips * incr;
  if (count == 0) { /* no iterations: an empty range */
    *lower = begin + trips * (uint64_t)incr;
    *upper = *lower - (uint64_t)incr;
    *last = 0;
    return;
  }
  *lower = begin + first * (uint64_t)incr;
  *upper = begin + (first + count - 1) * (uint64_t)incr;
  *last = first + count == trips;
}

void __kmpc_for_static_init_8(ident_t *loc, int32_t gtid, int32_t schedule, int32_t *last,
                              int64_t *lower, int64_t *upper, int64_t *stride, int64_t incr,
                              int64_t chunk) {
  __kmpc_for_static_init_8u(loc, gtid, schedule, last, (uint64_t *)lower, (uint64_t *)upper,
                            stride, incr, chunk);
}

void __kmpc_for_static_fini(ident_t *loc, int32_t gtid) {
  (void)loc;
  (void)gtid;
}

#pragma GCC visibility pop
