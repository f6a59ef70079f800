/* bench_trace.h: `drrl bench trace`: how fast a large trace loads for replay
 * and in how much memory (the target: 10^6 rows in <= 2 s, <= 300 MB). */
#ifndef DRRL_BENCH_TRACE_H
#define DRRL_BENCH_TRACE_H

/* argv[0] is "trace". Returns an exit code. */
int bench_trace(int argc, char **argv);

#endif
