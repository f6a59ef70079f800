/* tui_data.h: deterministic test data for the TUI tests: a TraceStore
 * filled with records built here (a short English text, plausible decaying
 * spectra, ranks chosen by an energy rule, bounds, masks, FLOPs, policy
 * probabilities). Test data, not a model: the live engine fills stores the
 * same way through its sink. */
#ifndef DRRL_TUI_DATA_H
#define DRRL_TUI_DATA_H

#include <stdbool.h>

#include "trace/trace_store.h"

/* A new store of n_steps tokens, L layers, H heads, head_dim d (a multiple
 * of 4, >= 8), segment length 8, with or without policy columns. NULL when
 * out of memory. */
TraceStore *tui_data_store(int n_steps, int L, int H, int d, bool policy);

#endif
