/* bench_util.h: timing helpers shared by the `drrl bench` subcommands. */
#ifndef DRRL_BENCH_UTIL_H
#define DRRL_BENCH_UTIL_H

#include "base/clock.h" /* clock_now_s: the monotonic wall clock */

/* The median of v[0..n-1] (n >= 1); sorts v in place. */
double bench_median(double *v, int n);

#endif
