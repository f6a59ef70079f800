/* blas.h: running OpenBLAS single-threaded for a while.
 *
 * Code that runs many small products on its own threads (a worker pool, a
 * batch of eigensolves) sets OpenBLAS to one thread first: its threads would
 * only spin and contend with ours. The setting is process-wide, so it is
 * restored afterwards; a caller already at one thread (a worker) changes
 * nothing.
 *
 *     int saved = blas_serial_begin();
 *     ... products ...
 *     blas_serial_end(saved);
 */
#ifndef DRRL_BLAS_H
#define DRRL_BLAS_H

/* Set OpenBLAS to one thread; returns the thread count it had. */
int blas_serial_begin(void);

/* Restore the count blas_serial_begin returned. */
void blas_serial_end(int saved);

/* Hold OpenBLAS at one thread with its own threads stopped, for as long
 * as a pool of ours runs every product single-threaded (model/forward.h):
 * OpenBLAS (pthreads build) starts its threads when the library loads and
 * again at every change of its thread count, and they spin (sched_yield)
 * for about 2^28 cycles, about 0.1 s, before they sleep: on every core at
 * once, beside our threads (measured on 16 threads: 0.03-0.05 s of a 0.4 s
 * `drrl run`). Holds nest (a count); the last release restores the thread
 * count of the first hold, and OpenBLAS starts its threads again when a
 * product wants them. Inside a hold blas_serial_begin/end change nothing.
 * blas_hold_serial returns 1 if OpenBLAS's threads were stopped (0 with a
 * BLAS that has no such call, or already held). Thread-safe. */
int blas_hold_serial(void);
void blas_release_serial(void);

/* OpenBLAS's thread count as the user set it (OPENBLAS_NUM_THREADS, the
 * CPUs, openblas_set_num_threads), also inside a hold, where OpenBLAS
 * itself says 1: what "0 threads = OpenBLAS's count" means. Without this,
 * a second session opened while the first holds (bench attention's five,
 * a model loaded beside a session) got one thread. Thread-safe. */
int blas_threads(void);

#endif
