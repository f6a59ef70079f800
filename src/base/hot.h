/* hot.h: DRRL_HOT marks a hot loop that GCC should vectorise.
 *
 * The loops it marks are written with no float reductions across lanes and
 * no calls, and are compiled for AVX-512, AVX2 and baseline x86-64, the
 * variant picked at load time. -std=c11 contracts no multiply-add, so every
 * variant gives the same bits as the plain loop. no-trapping-math lets GCC
 * if-convert the branches of the fast exponential. Elsewhere (clang, other
 * CPUs or systems) it is empty. */
#ifndef DRRL_BASE_HOT_H
#define DRRL_BASE_HOT_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DRRL_HOT                                                                               \
    __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math"),  \
                   target_clones("avx512f", "avx2", "default")))
#else
#define DRRL_HOT
#endif

#endif
