/* bench_attention.h: `drrl bench attention`: executed FLOPs and wall time of
 * exact and low-rank attention against the sequence length (the DR-RL
 * paper's Fig. 3, measured), batched Gram-eigensolve bases against per-head
 * SVD, and incremental basis refresh against full recompute. */
#ifndef DRRL_BENCH_ATTENTION_H
#define DRRL_BENCH_ATTENTION_H

/* argv[0] is "attention". Returns an exit code. */
int bench_attention(int argc, char **argv);

#endif
