/* bench_tui.h: `drrl bench tui`: the explorer's step and frame times. */
#ifndef DRRL_BENCH_TUI_H
#define DRRL_BENCH_TUI_H

/* argv[0] is "tui". Returns an exit code. */
int bench_tui(int argc, char **argv);

#endif
