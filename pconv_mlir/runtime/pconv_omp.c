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
 * A parallel region runs on the calling thread plus n - 1 pooled workers. Between regions a
 * worker spins on the region counter for up to PCONV_SPIN_NS (then sleeps on a condition
 * variable), and the calling thread spins for its workers to finish the same way: a network
 * forks a few hundred short regions per call, and waking a sleeping thread costs tens of
 * microseconds (more on a virtual machine) each time. PCONV_SPIN_NS=0 in the environment
 * sleeps at once. A region started inside another (or while one is running on another thread)
 * runs on the calling thread alone. Loops are split statically in contiguous chunks, the
 * default `schedule(static)`.
 */

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Nothing here is exported from a shared library: the generated code binds to these
 * definitions, never to another libomp (or another pconv library) loaded in the same process.
 * A library exports `<name>_set_threads` instead (see pconv_mlir.runtime.driver). */
#pragma GCC visibility push(hidden)

#define PCONV_MAX_THREADS 256
#define PCONV_SPIN_NS_DEFAULT 1000000L /* 1 ms */

typedef void (*pconv_microtask)(int32_t *gtid, int32_t *btid, void *arg);

static struct {
  pthread_mutex_t lock;
  pthread_cond_t start, done;
  int workers;               /* pooled workers created so far */
  int wanted;                /* threads asked for (0: not yet decided) */
  int busy;                  /* a region is running */
  int sleepers;              /* workers asleep on `start` */
  /* The region: (its number << 16) | its team size, published last (release), so a worker
   * that reads a new number (acquire) sees the task and argument stored before it. */
  _Atomic uint64_t region;
  atomic_int finished;       /* workers done with the current region */
  atomic_int arrived;        /* threads at the current barrier */
  atomic_uint barrier_round; /* barriers passed in this process */
  pconv_microtask task;
  void *arg;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static __thread int32_t pconv_thread_id = 0; /* this thread's number in its team */
static __thread int32_t pconv_team = 1;      /* the size of the team this thread runs in */
static __thread int pconv_in_region = 0;

static int default_threads(void) {
  const char *env = getenv("PCONV_NUM_THREADS");
  if (env && atoi(env) > 0) return atoi(env);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (int)cores : 1;
}

static long spin_ns(void) {
  static long ns = -1; /* racy but idempotent */
  if (ns < 0) {
    const char *env = getenv("PCONV_SPIN_NS");
    ns = env ? atol(env) : PCONV_SPIN_NS_DEFAULT;
    if (ns < 0) ns = 0;
  }
  return ns;
}

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Spin until `cond` holds or the spin time is over; evaluates to whether it holds. */
#define SPIN_UNTIL(cond)                                                    \
  ({                                                                        \
    int _held = (cond);                                                     \
    long _limit = spin_ns();                                                \
    if (!_held && _limit > 0) {                                             \
      long _end = now_ns() + _limit;                                        \
      for (unsigned _i = 1; !(_held = (cond)); _i++) {                      \
        cpu_relax();                                                        \
        if ((_i & 255) == 0 && now_ns() > _end) break;                      \
      }                                                                     \
    }                                                                       \
    _held;                                                                  \
  })

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

/* `start`: (the number of the last region before it was created << 16) | its thread id. */
static void *worker(void *start) {
  int32_t id = (int32_t)((uintptr_t)start & 0xffff);
  uint64_t seen = (uintptr_t)start >> 16;
  pconv_thread_id = id;
  for (;;) {
    uint64_t region;
#define NEW_REGION \
  ((region = atomic_load_explicit(&pool.region, memory_order_acquire)) >> 16 != seen)
    if (!SPIN_UNTIL(NEW_REGION)) {
      pthread_mutex_lock(&pool.lock);
      pool.sleepers++;
      while (!NEW_REGION) pthread_cond_wait(&pool.start, &pool.lock);
      pool.sleepers--;
      pthread_mutex_unlock(&pool.lock);
    }
#undef NEW_REGION
    seen = region >> 16;
    int32_t team = (int32_t)(region & 0xffff);
    if (id >= team) continue; /* a region without me */
    /* Until this worker counts itself finished, the task and argument stay. */
    pconv_microtask task = pool.task;
    void *arg = pool.arg;

    int32_t gtid = id, btid = id;
    pconv_in_region = 1;
    pconv_team = team;
    task(&gtid, &btid, arg);
    pconv_in_region = 0;

    if (atomic_fetch_add_explicit(&pool.finished, 1, memory_order_acq_rel) + 1 == team - 1) {
      pthread_mutex_lock(&pool.lock); /* the caller may be asleep on `done` */
      pthread_cond_signal(&pool.done);
      pthread_mutex_unlock(&pool.lock);
    }
  }
  return NULL;
}

/* Make sure `team - 1` workers exist; returns the team size actually available. Called with
 * the lock held, before the next region is published: a new worker waits for that one. */
static int grow_pool(int team) {
  while (pool.workers < team - 1) {
    pthread_t thread;
    uintptr_t last = (uintptr_t)(atomic_load_explicit(&pool.region, memory_order_relaxed) >> 16);
    void *start = (void *)((last << 16) | (uintptr_t)(pool.workers + 1));
    if (pthread_create(&thread, NULL, worker, start) != 0) break;
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
  pool.task = task;
  pool.arg = arg;
  atomic_store_explicit(&pool.finished, 0, memory_order_relaxed);
  atomic_store_explicit(&pool.arrived, 0, memory_order_relaxed);
  uint64_t number = (atomic_load_explicit(&pool.region, memory_order_relaxed) >> 16) + 1;
  atomic_store_explicit(&pool.region, (number << 16) | (uint64_t)team, memory_order_release);
  if (pool.sleepers > 0) pthread_cond_broadcast(&pool.start);
  pthread_mutex_unlock(&pool.lock);

  int32_t gtid = 0, btid = 0;
  pconv_thread_id = 0;
  pconv_team = team;
  pconv_in_region = 1;
  task(&gtid, &btid, arg);
  pconv_in_region = 0;
  pconv_team = 1;

#define ALL_FINISHED \
  (atomic_load_explicit(&pool.finished, memory_order_acquire) == team - 1)
  int joined = SPIN_UNTIL(ALL_FINISHED);
  pthread_mutex_lock(&pool.lock);
  if (!joined)
    while (!ALL_FINISHED) pthread_cond_wait(&pool.done, &pool.lock);
#undef ALL_FINISHED
  pool.busy = 0;
  pthread_mutex_unlock(&pool.lock);
}

/* A barrier of the running team: the last thread to arrive starts the next round; the others
 * spin on the round number, yielding the processor while they wait. */
void __kmpc_barrier(ident_t *loc, int32_t gtid) {
  (void)loc;
  (void)gtid;
  if (!pconv_in_region || pconv_team <= 1) return;
  unsigned round = atomic_load_explicit(&pool.barrier_round, memory_order_acquire);
  if (atomic_fetch_add_explicit(&pool.arrived, 1, memory_order_acq_rel) + 1 == pconv_team) {
    atomic_store_explicit(&pool.arrived, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.barrier_round, round + 1, memory_order_release);
    return;
  }
  for (unsigned i = 1; atomic_load_explicit(&pool.barrier_round, memory_order_acquire) == round;
       i++) {
    cpu_relax();
    if ((i & 1023) == 0) sched_yield();
  }
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
