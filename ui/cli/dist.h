/* dist.h: drrl spread over several processes with MPI (ui/ only). dist.c is
 * the one file that includes mpi.h; commands call dist_* and nothing else.
 *
 * drrl initialises MPI only when a launcher started it (mpirun sets
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK): a plain `drrl` never touches
 * MPI, and a drrl configured --without-mpi (or where configure found no
 * MPI) is always rank 0 of 1. With one process every collective below is a
 * copy, so a command written against dist_* runs the same code alone.
 *
 * Collectives run on a duplicate of MPI_COMM_WORLD whose errors return (they
 * come back as DRRL_E_IO naming the call). A rank that dies is seen by
 * mpirun, which stops the job ("mpirun noticed that process rank R ...
 * exited on signal 9"). A rank that fails on its own (an error the others do
 * not share) and so never reaches the others' next collective stops the job
 * from dist_finish (MPI_Abort after a grace period, naming itself and its
 * exit status), so a job never hangs on one rank's error.
 *
 * Determinism: the collectives move bytes; they never add. A caller that
 * needs a sum gathers the parts and adds them in a fixed order of its own
 * (one that does not depend on the number of processes), so that results are
 * byte-identical for any number of processes.
 */
#ifndef DRRL_DIST_H
#define DRRL_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

/* Before the command runs: MPI_Init when a launcher started drrl (and drrl
 * was built with MPI), else nothing. */
void dist_init(int *argc, char ***argv);

/* After the command, with its exit status rc: agree with the other ranks
 * (the exit status of every rank becomes the largest one), then
 * MPI_Finalize. A rank with rc != 0 whose peers do not arrive within the
 * grace period ($DRRL_DIST_GRACE seconds, default 5) aborts the job with a
 * message. Returns the exit status to use. */
int dist_finish(int rc);

int dist_rank(void); /* 0 .. dist_size() - 1 */
int dist_size(void); /* 1 without MPI */

/* Whether this build can run under mpirun ("Open MPI 4.1.4", or NULL). */
const char *dist_library(void);

/* Gather n bytes from every rank to rank 0: on rank 0, *all (malloc'ed,
 * freed by the caller) receives the blocks of ranks 0, 1, ... in rank
 * order and counts[r] (dist_size() entries) their sizes; on the other ranks
 * *all is NULL. Errors: DRRL_E_NOMEM, DRRL_E_IO (an MPI call failed, or a
 * gather over 2 GiB). */
DrrlStatus dist_gather(const void *mine, size_t n, void **all, size_t *counts, DrrlError *err);

/* The same, every rank receiving all blocks (*all is never NULL on success). */
DrrlStatus dist_allgather(const void *mine, size_t n, void **all, size_t *counts,
                          DrrlError *err);

/* Rank 0's n bytes at buf copied to buf on every rank. */
DrrlStatus dist_bcast(void *buf, size_t n, DrrlError *err);

/* Under an MPI job of several ranks, standard input reaches rank 0 alone:
 * an input path "-" is a usage error there (rank 0 prints it; every rank
 * returns the exit status 2). Returns 0 when path may be read. */
int dist_refuse_stdin(const char *cmd, const char *opt, const char *path);

/* Logical OR of flag over the ranks (e.g. "someone was interrupted", "someone
 * failed"); every rank gets it. Returns -1 when the MPI call fails. */
int dist_any(int flag);

#endif
