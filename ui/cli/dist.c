/* dist.c: the MPI module (see dist.h). Everything MPI is in this file. */
#include "config.h"

#include "cli/dist.h"

#include "cli/cli.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;

int dist_rank(void)
{
    return g_rank;
}

int dist_size(void)
{
    return g_size;
}

int dist_refuse_stdin(const char *cmd, const char *opt, const char *path)
{
    if (g_size < 2 || !path || strcmp(path, "-") != 0)
        return 0;
    if (g_rank == 0)
        return cli_usage_error(
            cmd, "%s -: under mpirun only rank 0 has standard input; give a file", opt);
    return drrl_status_exit_code(DRRL_E_USAGE);
}

/* The single-process collectives: copies. */
static DrrlStatus copy_all(const void *mine, size_t n, void **all, size_t *counts,
                           DrrlError *err)
{
    *all = malloc(n ? n : 1);
    if (!*all)
        return drrl_error(err, DRRL_E_NOMEM, "dist: out of memory for %zu bytes", n);
    if (n)
        memcpy(*all, mine, n);
    counts[0] = n;
    return DRRL_OK;
}

#ifndef HAVE_MPI

void dist_init(int *argc, char ***argv)
{
    (void)argc, (void)argv;
}

int dist_finish(int rc)
{
    return rc;
}

const char *dist_library(void)
{
    return NULL;
}

DrrlStatus dist_gather(const void *mine, size_t n, void **all, size_t *counts, DrrlError *err)
{
    return copy_all(mine, n, all, counts, err);
}

DrrlStatus dist_allgather(const void *mine, size_t n, void **all, size_t *counts,
                          DrrlError *err)
{
    return copy_all(mine, n, all, counts, err);
}

DrrlStatus dist_bcast(void *buf, size_t n, DrrlError *err)
{
    (void)buf, (void)n, (void)err;
    return DRRL_OK;
}

int dist_any(int flag)
{
    return flag != 0;
}

#else

static int g_on;             /* MPI initialised by dist_init */
static MPI_Comm g_comm;      /* the commands' collectives */
static MPI_Comm g_exit_comm; /* dist_finish's agreement only */
static char g_lib[64] = "MPI";

static DrrlStatus mpi_fail(DrrlError *err, const char *what, int code)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", code);
    return drrl_error(err, DRRL_E_IO, "dist: rank %d of %d: %s failed: %s", g_rank, g_size,
                      what, msg);
}

void dist_init(int *argc, char ***argv)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
        return; /* not started by a launcher: one process, no MPI */
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "drrl: dist: MPI_Init failed\n");
        exit(1);
    }
    g_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_exit_comm);
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g_exit_comm, MPI_ERRORS_RETURN);
}

const char *dist_library(void)
{
#ifdef OMPI_MAJOR_VERSION
    snprintf(g_lib, sizeof g_lib, "Open MPI %d.%d.%d", OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION,
             OMPI_RELEASE_VERSION);
#else
    snprintf(g_lib, sizeof g_lib, "MPI %d.%d", MPI_VERSION, MPI_SUBVERSION);
#endif
    return g_lib;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dist_finish(int rc)
{
    if (!g_on)
        return rc;
    double grace = 5.0;
    const char *g = getenv("DRRL_DIST_GRACE");
    if (g && atof(g) > 0)
        grace = atof(g);
    int mine = rc, worst = rc;
    MPI_Request req;
    int done = 0;
    if (MPI_Iallreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, g_exit_comm, &req) != MPI_SUCCESS) {
        fprintf(stderr,
                "drrl: dist: rank %d of %d: cannot reach the other ranks; "
                "stopping the job\n",
                g_rank, g_size);
        MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
    }
    double t0 = now_s();
    const struct timespec nap = {0, 2000000}; /* 2 ms */
    while (!done) {
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            break;
        if (done)
            break;
        if (rc != 0 && now_s() - t0 > grace) {
            fprintf(stderr,
                    "drrl: dist: rank %d of %d failed (exit status %d) and the other ranks "
                    "did not stop within %g s; stopping the job\n",
                    g_rank, g_size, rc, grace);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, rc);
        }
        nanosleep(&nap, NULL);
    }
    if (!done) {
        fprintf(stderr, "drrl: dist: rank %d of %d: lost the other ranks; stopping the job\n",
                g_rank, g_size);
        MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
    }
    MPI_Comm_free(&g_comm);
    MPI_Comm_free(&g_exit_comm);
    MPI_Finalize();
    g_on = 0;
    return worst;
}

/* Sizes of every rank's block (to root, or to all when root < 0), and the
 * displacements as MPI's ints. */
static DrrlStatus exchange_sizes(size_t n, int root, size_t *counts, int **cnt, int **dsp,
                                 DrrlError *err)
{
    uint64_t mine = n, *all = malloc((size_t)g_size * sizeof *all);
    *cnt = malloc((size_t)g_size * sizeof **cnt);
    *dsp = malloc((size_t)g_size * sizeof **dsp);
    if (!all || !*cnt || !*dsp) {
        free(all), free(*cnt), free(*dsp);
        *cnt = *dsp = NULL;
        return drrl_error(err, DRRL_E_NOMEM, "dist: out of memory");
    }
    int rc = root < 0 ? MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, g_comm)
                      : MPI_Gather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, root, g_comm);
    if (rc != MPI_SUCCESS) {
        free(all), free(*cnt), free(*dsp);
        *cnt = *dsp = NULL;
        return mpi_fail(err, root < 0 ? "MPI_Allgather" : "MPI_Gather", rc);
    }
    if (root < 0 || g_rank == root) {
        uint64_t off = 0;
        for (int r = 0; r < g_size; r++) {
            counts[r] = (size_t)all[r];
            (*cnt)[r] = (int)all[r];
            (*dsp)[r] = (int)off;
            off += all[r];
            if (all[r] > INT_MAX || off > INT_MAX) {
                free(all), free(*cnt), free(*dsp);
                *cnt = *dsp = NULL;
                return drrl_error(err, DRRL_E_IO,
                                  "dist: a gather of more than 2 GiB (rank %d's part)", r);
            }
        }
    }
    free(all);
    return DRRL_OK;
}

static DrrlStatus gather_to(int root, const void *mine, size_t n, void **all, size_t *counts,
                            DrrlError *err)
{
    *all = NULL;
    if (!g_on)
        return copy_all(mine, n, all, counts, err);
    if (n > INT_MAX)
        return drrl_error(err, DRRL_E_IO, "dist: a block of %zu bytes (over 2 GiB)", n);
    int *cnt, *dsp;
    DrrlStatus st = exchange_sizes(n, root, counts, &cnt, &dsp, err);
    /* A failure on one rank alone here would leave the others in the next
     * call: the size exchange already failed for everyone, or nobody. */
    if (st)
        return st;
    size_t total = 0;
    if (root < 0 || g_rank == root)
        total = (size_t)dsp[g_size - 1] + (size_t)cnt[g_size - 1];
    char *buf = NULL;
    if (root < 0 || g_rank == root) {
        buf = malloc(total ? total : 1);
        if (!buf) {
            free(cnt), free(dsp);
            return drrl_error(err, DRRL_E_NOMEM, "dist: out of memory for %zu bytes", total);
        }
    }
    int rc = root < 0
                 ? MPI_Allgatherv(mine, (int)n, MPI_BYTE, buf, cnt, dsp, MPI_BYTE, g_comm)
                 : MPI_Gatherv(mine, (int)n, MPI_BYTE, buf, cnt, dsp, MPI_BYTE, root, g_comm);
    free(cnt), free(dsp);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_fail(err, root < 0 ? "MPI_Allgatherv" : "MPI_Gatherv", rc);
    }
    *all = buf;
    return DRRL_OK;
}

DrrlStatus dist_gather(const void *mine, size_t n, void **all, size_t *counts, DrrlError *err)
{
    return gather_to(0, mine, n, all, counts, err);
}

DrrlStatus dist_allgather(const void *mine, size_t n, void **all, size_t *counts,
                          DrrlError *err)
{
    return gather_to(-1, mine, n, all, counts, err);
}

DrrlStatus dist_bcast(void *buf, size_t n, DrrlError *err)
{
    if (!g_on || n == 0)
        return DRRL_OK;
    char *p = buf;
    while (n > 0) { /* in pieces below INT_MAX */
        int k = n > (size_t)(1 << 30) ? 1 << 30 : (int)n;
        int rc = MPI_Bcast(p, k, MPI_BYTE, 0, g_comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Bcast", rc);
        p += k, n -= (size_t)k;
    }
    return DRRL_OK;
}

int dist_any(int flag)
{
    if (!g_on)
        return flag != 0;
    int in = flag != 0, out = 0;
    if (MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, g_comm) != MPI_SUCCESS)
        return -1;
    return out;
}

#endif
