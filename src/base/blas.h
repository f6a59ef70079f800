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

#endif
