/* clock.h: the one wall clock: CLOCK_MONOTONIC (never steps back, unaffected
 * by changes of the date), for measured times only; nothing computed from it
 * may enter a decision, so runs stay deterministic. */
#ifndef DRRL_CLOCK_H
#define DRRL_CLOCK_H

#include <stdint.h>

/* Now, in nanoseconds since an arbitrary fixed point. */
int64_t clock_now_ns(void);

/* Now, in seconds since the same point. */
double clock_now_s(void);

#endif
