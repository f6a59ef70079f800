/* bench_tokenize.h: `drrl bench tokenize`: encoding speed of tokenizers. */
#ifndef DRRL_BENCH_TOKENIZE_H
#define DRRL_BENCH_TOKENIZE_H

int bench_tokenize(int argc, char **argv);

#endif
