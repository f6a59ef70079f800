#include "attn/attn_core.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hot.h"
#include "base/mem.h"
#include "attn/basis.h"
#include "base/blas.h"
#include "base/clock.h"
#include "base/rng.h"
#include "base/softmax.h"
#include "attn/bounds.h"
#include "attn/guard.h"
#include "attn/lowrank_kernel.h"

enum { SIDE_K = 0, SIDE_V = 1 };
enum { REFRESH_NONE = 0, REFRESH_KEEP = 1, REFRESH_RECOMPUTE = 2 };

/* Keys or values of one (layer, kv head). */
typedef struct Side {
    double *G;    /* (D, D) upper: Gram of all completed segments */
    double *Gref; /* (D, D) full: G at the last eigensolve */
    double *lam;  /* (D) eigenvalues of Gref, descending */
    double *lamg; /* (D) eigenvalues of G at the last boundary that computed
                   * them (an eigensolve or the eigenvalue test), descending */
    int lamg_new; /* lamg is newer than lam (from an eigenvalue test) */
    double *Bd;   /* (D, D) basis in double (column j = direction j) */
    float *B;     /* (D, D) the same in float, used by the kernels */
    float *P;     /* (D, cap): P[j*cap + t] = (x_t B)_j, the projected cache */
    double *E;    /* (D) sum_t P[j][t]^2 over all projected rows, j < w */
    double *En;   /* (D) same over rows n_ref.. (since the last eigensolve) */
    double trace_ref;
    int64_t n_ref;  /* rows in Gref */
    int64_t n_gram; /* rows folded into G */
    int64_t n_proj; /* rows in P */
    int32_t w;      /* projected width: P holds directions 0..w-1 */
    double tot;     /* sum_t ||x_t||^2 over all cached rows (double) */
    double tot_new; /* the same over rows since the last eigensolve (n_ref..) */
    double rowmax;  /* max_t ||x_t||_2 over cached rows */
    double dG;      /* ||G - Gref||_F at the last boundary */
    double *sinr;   /* (D + 1) residual Davis-Kahan bound per rank, last boundary */
    double *res2;   /* (D + 1) bounds_side_res2 after the last advance (head kernel) */
    double *vrel;   /* (D + 1) side_rel of each rank's res2 at the last boundary */
    double *ven;    /* (D + 1) side_energy of each rank at the last boundary */
    int has_basis;
    int refresh; /* last boundary's decision */
    /* per-call accumulators, written by the one thread that works on this
     * side and merged into the ledger and stats on the calling thread */
    double fl[FLOPS_CAT_COUNT];     /* boundary work, charged to the segment's first row */
    double fl_row[FLOPS_CAT_COUNT]; /* the call's rows' projections, the same per row */
    int n_keep, n_recompute, n_keep_stale, n_eigvals;
    DrrlStatus st;
    DrrlError err;
    /* the call's advance (side_advance to adv_w directions), run by the
     * first head task of the layer that claims it (advance_help) */
    int32_t adv_w;
    size_t adv_pos0, adv_n;
    atomic_int adv_claim, adv_done;
    /* a boundary at bnd_pos left to the head tasks (boundaries_folded) */
    int bnd_pending;
    int64_t bnd_pos;
} Side;

typedef struct Kv {
    Side s[2];
    atomic_int bnd_sides; /* sides whose folded boundary is done */
} Kv;

/* The guard's own projected columns of one kv head's sides (guard.h, Xk /
 * Xv): directions c0[si] <= j < c1[si] of rows t < n[si] in the side's
 * basis, X[si][(j - c0) * cap + t], where c0 was the side's width when the
 * basis ver[si] (its n_ref) was first replayed; rebuilt when the basis
 * changes. They let the guard replay the ranks above the heads' widths
 * at low-rank cost without widening P, whose width the refresh's tests
 * and the per-direction energies depend on. */
typedef struct GuardCols {
    float *X[2];
    size_t cap;
    int64_t n[2], ver[2];
    int32_t c0[2], c1[2];
} GuardCols;

typedef struct Perf {
    float *W;  /* (M, D) */
    double *S; /* (M, D) */
    double *z; /* (M) */
    double c;  /* shift of every exponent in S and z */
} Perf;

typedef struct Nys {
    float *Lq, *Lk; /* (M, D) */
    double *S;      /* (M, D) */
    double *z, *c;  /* (M) */
    double *Ap;     /* (M, M) pinv of the landmark kernel, m_used x m_used */
    double *qsum;   /* (D) sum of this segment's queries */
    int32_t m_used, next;
} Nys;

/* The decision in force for (layer, query head). */
typedef struct HeadState {
    int32_t rank;
    double energy, tail_rel, sin_theta;
    double guard; /* the guard's estimate at the rank in force (NAN: none) */
    int guard_ok; /* the rank in force passed the guard (estimate <= eps) */
    int32_t n_masked;
    int32_t *masked; /* (grid.n) */
    float *probs;    /* (grid.n) policy probabilities, n_probs of them */
    int32_t n_probs;
    double value;
} HeadState;

/* One (layer, head, row) of the current call. */
/* One (layer, head, row) of a call: cleared for every call, so its size is
 * what every call's first touches and clearing pay (216 bytes on LP64, was
 * 312 before the exact counts kept only their three categories and the flags
 * became bytes: 46.0 -> 31.9 MB for a 1,024-row GPT-2 call). */
typedef struct RowStat {
    double fl[FLOPS_CAT_COUNT];
    double fl_exact[3];           /* FLOPS_SCORES + i: the only categories exact attention
                                     counts per row (flops_exact_row) */
    double attn_exec, attn_exact; /* attention-core totals of the row (finish_call) */
    double measured, fidelity, bound_abs, bound_rel, tail_rel, err_abs, guard;
    int64_t wall_ns;
    int32_t rank;
    uint8_t violation, measured_ok, lowrank, guard_ok;
} RowStat;

_Static_assert(FLOPS_SOFTMAX == FLOPS_SCORES + 1 && FLOPS_VALUE == FLOPS_SCORES + 2,
               "RowStat.fl_exact holds the three exact categories in enum order");

/* A row's exact count in category c: 0 outside scores, softmax and value. */
static inline double flops_exact_row(const RowStat *rs, int c)
{
    return c >= FLOPS_SCORES && c <= FLOPS_VALUE ? rs->fl_exact[c - FLOPS_SCORES] : 0.0;
}

struct AttnCore {
    AttnCoreConfig cfg;
    ModelConfig mc;
    RankGrid grid;
    int32_t L, H, K, D, group;
    Kv *kv;        /* (L, K) */
    HeadState *hs; /* (L, H) */
    RowStat *rows; /* (L, H, rows_cap) */
    size_t rows_cap, call_n, call_pos0;
    /* A call spans call_np pieces (one per segment it touches: layer-major
     * calls, attn_core_layer_major); piece[l] is the one layer l works on.
     * fin_pos: the first position finish_call has not emitted yet.
     * call_hooked: calls are announced by call_begin (a forward drives the
     * hook), else layer 0's layer_begin starts a call of one piece. */
    size_t call_np, np_cap, fin_pos;
    size_t *piece; /* (L) */
    int call_hooked;
    /* the state each piece's records show, per piece, kept when a call has
     * several (later pieces change it before the records go out): the
     * heads' decisions, (np, L, H) with their masked ranks and policy
     * probabilities (np, L, H, grid.n), and the kv heads' eigenvalues
     * (np, L, K, 2, D) and whether they have a basis (np, L, K) */
    HeadState *snap_hs;
    int32_t *snap_masked;
    float *snap_probs;
    double *snap_lam;
    uint8_t *snap_basis;
    size_t pcap; /* capacity (rows) of every projected cache */
    size_t pld;  /* its leading dimension: pcap + PROJ_PAD (see grow_proj) */
    float *qh;   /* (L, H, qcap, D) query history (keep_queries) */
    size_t qcap, qlen;
    double *callfl;  /* (np, L, H, FLOPS_CAT_COUNT): boundary work (refresh, policy) */
    double *callrow; /* (np, L, H, FLOPS_CAT_COUNT): per-row work of each piece, spread
                        evenly */
    FlopLedger exec, exact;
    AttnCoreStats stats;
    AttnChooser chooser;
    void *chooser_ctx;
    AttnCacheFn cache_k, cache_v;
    const void *cache_ctx;
    Forward *pool;        /* whose threads run the refresh and the guard, or NULL */
    int64_t *seg_done;    /* (L): last segment whose boundary was processed */
    uint8_t *adv_pending; /* (L): the layer's advance is set up, not yet merged */
    uint64_t rng;
    /* baselines */
    Perf *perf;    /* (L, K) performer state */
    Nys *nys;      /* (L, H) nystrom state */
    float *bl_out; /* (call n, H, D) baseline outputs of the current layer */
    size_t bl_cap;
    /* the guard: sampled query rows of the segment in progress, (L, H, S, D),
     * their head outputs as the forward computed them, (L, H, S, D), and the
     * rank each was computed at, (L, H, S) (0: none yet) */
    float *segq, *sego;
    int32_t *sego_r;
    int32_t guard_rows;
    GuardCols *gcols; /* (L, K), for the guarded methods */
    double *ratios;   /* bound / measured error of low-rank rows (for the median) */
    size_t n_ratios, ratios_cap;
    /* decision scratch */
    double *dec_energy, *dec_energy_v, *dec_bound, *dec_guard;
    uint8_t *dec_mask, *dec_gdone;
    int32_t *dec_prev, *dec_rank;
    float *dec_probs;
    double *dec_value;
};

static void perf_reset(Perf *p, int32_t M, int32_t D);
static void orf_fill(float *W, int32_t M, int32_t D, uint64_t seed);

/* ---- small helpers ---- */

void attn_core_config_default(AttnCoreConfig *c)
{
    memset(c, 0, sizeof *c);
    method_parse("full", &c->method, NULL);
    c->segment = 128;
    c->measure = 1;
    c->eps = NAN;
    c->rot_tol = 0.1;
}

static void side_free(Side *s)
{
    free(s->G), free(s->Gref), free(s->lam), free(s->lamg), free(s->Bd), free(s->B), free(s->P),
        free(s->E), free(s->En), free(s->sinr), free(s->res2), free(s->vrel), free(s->ven);
}

static int side_alloc(Side *s, int32_t D)
{
    size_t dd = (size_t)D * D;
    memset(s, 0, sizeof *s);
    s->G = calloc(dd, sizeof *s->G);
    s->Gref = calloc(dd, sizeof *s->Gref);
    s->lam = calloc((size_t)D, sizeof *s->lam);
    s->lamg = calloc((size_t)D, sizeof *s->lamg);
    s->Bd = calloc(dd, sizeof *s->Bd);
    s->B = calloc(dd, sizeof *s->B);
    s->E = calloc((size_t)D, sizeof *s->E);
    s->En = calloc((size_t)D, sizeof *s->En);
    s->sinr = calloc((size_t)D + 1, sizeof *s->sinr);
    s->res2 = calloc((size_t)D + 1, sizeof *s->res2);
    s->vrel = calloc((size_t)D + 1, sizeof *s->vrel);
    s->ven = calloc((size_t)D + 1, sizeof *s->ven);
    return s->G && s->Gref && s->lam && s->lamg && s->Bd && s->B && s->E && s->En && s->sinr &&
           s->res2 && s->vrel && s->ven;
}

static void side_reset(Side *s, int32_t D)
{
    size_t dd = (size_t)D * D;
    memset(s->G, 0, dd * sizeof *s->G);
    memset(s->Gref, 0, dd * sizeof *s->Gref);
    memset(s->lam, 0, (size_t)D * sizeof *s->lam);
    memset(s->lamg, 0, (size_t)D * sizeof *s->lamg);
    s->lamg_new = 0;
    memset(s->E, 0, (size_t)D * sizeof *s->E);
    memset(s->En, 0, (size_t)D * sizeof *s->En);
    memset(s->sinr, 0, ((size_t)D + 1) * sizeof *s->sinr);
    memset(s->res2, 0, ((size_t)D + 1) * sizeof *s->res2);
    s->trace_ref = 0, s->n_ref = s->n_gram = s->n_proj = 0;
    s->w = 0, s->tot = s->tot_new = 0.0;
    s->rowmax = s->dG = 0;
    s->has_basis = 0, s->refresh = REFRESH_NONE;
    s->bnd_pending = 0;
}

/* The baselines' state: Performer's random features and running sums per
 * (layer, kv head), Nystrom's landmarks and sums per (layer, head). On
 * failure what was allocated is left for attn_core_free. */
static DrrlStatus baselines_alloc(AttnCore *ac, DrrlError *err)
{
    const AttnCoreConfig *c = &ac->cfg;
    size_t LK = (size_t)ac->L * ac->K, LH = (size_t)ac->L * ac->H;
    int32_t M = c->method.m, D = ac->D;
    size_t MD = (size_t)M * D;
    if (c->method.kind == METHOD_PERFORMER) {
        if (!(ac->perf = calloc(LK, sizeof *ac->perf)))
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (performer)");
        for (size_t i = 0; i < LK; i++) {
            Perf *p = &ac->perf[i];
            p->W = malloc(MD * sizeof *p->W);
            p->S = malloc(MD * sizeof *p->S);
            p->z = malloc((size_t)M * sizeof *p->z);
            if (!p->W || !p->S || !p->z)
                return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (performer)");
            /* seeded per (layer, kv head): the same seed gives the same features */
            orf_fill(p->W, M, D, c->seed * 0x100000001b3ull + i * 0x9e3779b97f4a7c15ull + 1);
        }
        return DRRL_OK;
    }
    if (!(ac->nys = calloc(LH, sizeof *ac->nys)))
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (nystrom)");
    for (size_t i = 0; i < LH; i++) {
        Nys *y = &ac->nys[i];
        y->Lq = calloc(MD, sizeof *y->Lq);
        y->Lk = calloc(MD, sizeof *y->Lk);
        y->S = calloc(MD, sizeof *y->S);
        y->z = calloc((size_t)M, sizeof *y->z);
        y->c = calloc((size_t)M, sizeof *y->c);
        y->Ap = calloc((size_t)M * M, sizeof *y->Ap);
        y->qsum = calloc((size_t)D, sizeof *y->qsum);
        if (!y->Lq || !y->Lk || !y->S || !y->z || !y->c || !y->Ap || !y->qsum)
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (nystrom)");
    }
    return DRRL_OK;
}

DrrlStatus attn_core_new(const ModelConfig *cfg, const AttnCoreConfig *c, AttnCore **out,
                         DrrlError *err)
{
    *out = NULL;
    DrrlStatus st = method_check(&c->method, cfg->head_dim, cfg->n_layer, err);
    if (st)
        return st;
    if (c->segment < 1)
        return drrl_error(err, DRRL_E_USAGE, "--segment must be >= 1 (got %d)",
                          (int)c->segment);
    AttnCore *ac = calloc(1, sizeof *ac);
    if (!ac)
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
    ac->cfg = *c;
    if (isnan(ac->cfg.eps))
        ac->cfg.eps = ATTN_CORE_EPS;
    ac->mc = *cfg;
    ac->L = cfg->n_layer, ac->H = cfg->n_head, ac->K = cfg->n_kv_head, ac->D = cfg->head_dim;
    ac->group = ac->H / ac->K;
    ac->rng = c->seed ^ 0x5eed5eed5eedull;
    if ((st = method_grid(&ac->grid, ac->D, c->r_min, c->r_step, err)))
        goto fail;
    if ((st = flops_init(&ac->exec, ac->L, ac->H, err)) ||
        (st = flops_init(&ac->exact, ac->L, ac->H, err)))
        goto fail;
    size_t LK = (size_t)ac->L * ac->K, LH = (size_t)ac->L * ac->H, G = (size_t)ac->grid.n;
    ac->kv = calloc(LK, sizeof *ac->kv);
    ac->hs = calloc(LH, sizeof *ac->hs);
    ac->callfl = calloc(LH * FLOPS_CAT_COUNT, sizeof *ac->callfl);
    ac->callrow = calloc(LH * FLOPS_CAT_COUNT, sizeof *ac->callrow);
    ac->seg_done = calloc((size_t)ac->L, sizeof *ac->seg_done);
    ac->piece = calloc((size_t)ac->L, sizeof *ac->piece);
    ac->np_cap = 1;
    ac->adv_pending = calloc((size_t)ac->L, sizeof *ac->adv_pending);
    ac->dec_energy = calloc((size_t)ac->H * G, sizeof *ac->dec_energy);
    ac->dec_energy_v = calloc((size_t)ac->H * G, sizeof *ac->dec_energy_v);
    ac->dec_bound = calloc((size_t)ac->H * G, sizeof *ac->dec_bound);
    ac->dec_guard = calloc((size_t)ac->H * G, sizeof *ac->dec_guard);
    ac->dec_gdone = calloc((size_t)ac->H, sizeof *ac->dec_gdone);

    ac->guard_rows = c->guard_rows > 0 ? c->guard_rows : GUARD_ROWS;
    if (ac->guard_rows > GUARD_ROWS_MAX)
        ac->guard_rows = GUARD_ROWS_MAX;
    if (ac->guard_rows > c->segment)
        ac->guard_rows = c->segment;
    ac->segq = calloc(LH * (size_t)ac->guard_rows * ac->D, sizeof *ac->segq);
    ac->sego = calloc(LH * (size_t)ac->guard_rows * ac->D, sizeof *ac->sego);
    ac->sego_r = calloc(LH * (size_t)ac->guard_rows, sizeof *ac->sego_r);
    ac->gcols = calloc(LK, sizeof *ac->gcols);
    ac->dec_mask = calloc((size_t)ac->H * G, sizeof *ac->dec_mask);
    ac->dec_prev = calloc((size_t)ac->H, sizeof *ac->dec_prev);
    ac->dec_rank = calloc((size_t)ac->H, sizeof *ac->dec_rank);
    ac->dec_probs = calloc((size_t)ac->H * G, sizeof *ac->dec_probs);
    ac->dec_value = calloc((size_t)ac->H, sizeof *ac->dec_value);
    if (!ac->kv || !ac->hs || !ac->callfl || !ac->callrow || !ac->seg_done || !ac->piece ||
        !ac->adv_pending || !ac->dec_energy || !ac->dec_energy_v || !ac->dec_bound ||
        !ac->dec_guard || !ac->dec_gdone || !ac->segq || !ac->sego || !ac->sego_r ||
        !ac->gcols || !ac->dec_mask || !ac->dec_prev || !ac->dec_rank || !ac->dec_probs ||
        !ac->dec_value) {
        st = drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < LK; i++)
        for (int s = 0; s < 2; s++)
            if (!side_alloc(&ac->kv[i].s[s], ac->D)) {
                st = drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
                goto fail;
            }
    for (size_t i = 0; i < LH; i++) {
        ac->hs[i].masked = calloc(G, sizeof *ac->hs[i].masked);
        ac->hs[i].probs = calloc(G, sizeof *ac->hs[i].probs);
        if (!ac->hs[i].masked || !ac->hs[i].probs) {
            st = drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
            goto fail;
        }
    }
    if ((c->method.kind == METHOD_PERFORMER || c->method.kind == METHOD_NYSTROM) &&
        (st = baselines_alloc(ac, err)))
        goto fail;
    attn_core_reset(ac);
    *out = ac;
    return DRRL_OK;
fail:
    attn_core_free(ac);
    return st;
}

void attn_core_free(AttnCore *ac)
{
    if (!ac)
        return;
    if (ac->kv)
        for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
            side_free(&ac->kv[i].s[0]), side_free(&ac->kv[i].s[1]);
    if (ac->hs)
        for (size_t i = 0; i < (size_t)ac->L * ac->H; i++)
            free(ac->hs[i].masked), free(ac->hs[i].probs);
    if (ac->perf)
        for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
            free(ac->perf[i].W), free(ac->perf[i].S), free(ac->perf[i].z);
    if (ac->nys)
        for (size_t i = 0; i < (size_t)ac->L * ac->H; i++) {
            Nys *y = &ac->nys[i];
            free(y->Lq), free(y->Lk), free(y->S), free(y->z), free(y->c), free(y->Ap),
                free(y->qsum);
        }
    DRRL_FREE(ac->perf, ac->nys, ac->bl_out, ac->qh);
    free(ac->kv), free(ac->hs), free(ac->rows), free(ac->callfl), free(ac->callrow),
        free(ac->seg_done), free(ac->adv_pending), free(ac->piece);
    DRRL_FREE(ac->snap_hs, ac->snap_masked, ac->snap_probs, ac->snap_lam, ac->snap_basis);
    for (size_t i = 0; ac->gcols && i < (size_t)ac->L * ac->K; i++)
        free(ac->gcols[i].X[0]), free(ac->gcols[i].X[1]);
    free(ac->gcols);
    DRRL_FREE(ac->dec_energy, ac->dec_energy_v, ac->dec_bound, ac->dec_mask, ac->dec_prev,
              ac->dec_guard, ac->dec_gdone, ac->segq, ac->sego, ac->sego_r, ac->ratios,
              ac->dec_rank, ac->dec_probs, ac->dec_value);
    flops_done(&ac->exec), flops_done(&ac->exact);
    free(ac);
}

void attn_core_reset(AttnCore *ac)
{
    for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
        side_reset(&ac->kv[i].s[0], ac->D), side_reset(&ac->kv[i].s[1], ac->D);
    for (size_t i = 0; i < (size_t)ac->L * ac->H; i++) {
        HeadState *h = &ac->hs[i];
        h->rank = ac->D, h->energy = 1.0, h->tail_rel = 0.0, h->sin_theta = 0.0;
        h->n_masked = 0, h->n_probs = 0, h->value = NAN, h->guard = NAN, h->guard_ok = 1;
    }
    for (int32_t l = 0; l < ac->L; l++)
        ac->seg_done[l] = 0, ac->adv_pending[l] = 0;
    for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
        for (int si = 0; si < 2; si++)
            ac->gcols[i].n[si] = 0, ac->gcols[i].ver[si] = -1;
    flops_clear(&ac->exec), flops_clear(&ac->exact);
    memset(&ac->stats, 0, sizeof ac->stats);
    ac->n_ratios = 0;

    ac->qlen = 0;
    if (ac->perf)
        for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
            perf_reset(&ac->perf[i], ac->cfg.method.m, ac->D);
    if (ac->nys)
        for (size_t i = 0; i < (size_t)ac->L * ac->H; i++) {
            Nys *y = &ac->nys[i];
            y->m_used = y->next = 0;
            memset(y->qsum, 0, (size_t)ac->D * sizeof *y->qsum);
        }
    ac->rng = ac->cfg.seed ^ 0x5eed5eed5eedull;
}

void attn_core_set_chooser(AttnCore *ac, AttnChooser fn, void *ctx)
{
    ac->chooser = fn, ac->chooser_ctx = ctx;
}

void attn_core_bind_cache(AttnCore *ac, AttnCacheFn k, AttnCacheFn v, const void *ctx)
{
    ac->cache_k = k, ac->cache_v = v, ac->cache_ctx = ctx;
}

void attn_core_bind_pool(AttnCore *ac, Forward *f)
{
    ac->pool = f;
}

/* fn(ctx, t, worker) for t < n: on the bound forward's threads (at most
 * `want`), else here. */
static void core_parallel(AttnCore *ac, size_t n, int want, ForwardTaskFn fn, void *ctx)
{
    if (ac->pool && want > 1)
        forward_parallel(ac->pool, n, want, fn, ctx);
    else
        for (size_t t = 0; t < n; t++)
            fn(ctx, t, 0);
}

static int core_threads(const AttnCore *ac)
{
    return ac->pool ? forward_threads(ac->pool) : 1;
}

const FlopLedger *attn_core_flops_executed(const AttnCore *ac)
{
    return &ac->exec;
}
const FlopLedger *attn_core_flops_exact(const AttnCore *ac)
{
    return &ac->exact;
}
const AttnCoreStats *attn_core_stats(const AttnCore *ac)
{
    return &ac->stats;
}
const RankGrid *attn_core_grid(const AttnCore *ac)
{
    return &ac->grid;
}
double attn_core_eps(const AttnCore *ac)
{
    return ac->cfg.eps;
}

void attn_core_set_eps(AttnCore *ac, double eps)
{
    ac->cfg.eps = eps;
}

const char *attn_core_method(const AttnCore *ac)
{
    return ac->cfg.method.spec;
}

int attn_core_guarded(const AttnCore *ac)
{
    return method_is_guarded(&ac->cfg.method);
}

int32_t attn_core_rank(const AttnCore *ac, int32_t layer, int32_t head)
{
    if (layer < 0 || layer >= ac->L || head < 0 || head >= ac->H)
        return 0;
    return ac->hs[(size_t)layer * ac->H + head].rank;
}

static Kv *kv_at(AttnCore *ac, int32_t l, int32_t g)
{
    return &ac->kv[(size_t)l * ac->K + g];
}
static HeadState *hs_at(AttnCore *ac, int32_t l, int32_t h)
{
    return &ac->hs[(size_t)l * ac->H + h];
}

/* Rank r of a low-rank method runs at reduced rank (the rank-r kernel, or
 * its sgemm path above LOWRANK_KERNEL_MAX_RANK), not exact attention:
 * below head_dim, or at it when the tests ask (lowrank_at_full). */
static int rank_runs_lowrank(const AttnCore *ac, int32_t r)
{
    return r < ac->D || ac->cfg.lowrank_at_full;
}

/* Does a layer's boundary run inside its attention stage, each side by the
 * first head task that claims it (advance_help), instead of in a stage of
 * its own before the decision? Only where the decision reads nothing of
 * the boundary and the boundary nothing of the decision: fixed ranks
 * (constant over segments, so the ranks in use that the boundary's tests
 * read are the same before and after the decision), no guard. The
 * decision's records of the sides (head_side_stats) are then taken when
 * both sides of a kv head are done. Saves a meeting of the threads per
 * layer and segment, and the threads that finish their side early go on
 * to their heads' kernels instead of waiting for the slowest eigensolve. */
static int boundaries_folded(const AttnCore *ac)
{
    return ac->cfg.method.kind == METHOD_FIXED && ac->cfg.no_guard &&
           !method_is_guarded(&ac->cfg.method);
}
/* The call's boundary work and per-row work of (layer, head) in piece p,
 * and in the piece layer l works on now. */
static double *callfl_p(AttnCore *ac, size_t p, int32_t l, int32_t h)
{
    return ac->callfl + ((p * ac->L + l) * ac->H + h) * FLOPS_CAT_COUNT;
}
static double *callrow_p(AttnCore *ac, size_t p, int32_t l, int32_t h)
{
    return ac->callrow + ((p * ac->L + l) * ac->H + h) * FLOPS_CAT_COUNT;
}
static double *callfl_at(AttnCore *ac, int32_t l, int32_t h)
{
    return callfl_p(ac, ac->piece[l], l, h);
}
static double *callrow_at(AttnCore *ac, int32_t l, int32_t h)
{
    return callrow_p(ac, ac->piece[l], l, h);
}
static RowStat *row_at(AttnCore *ac, int32_t l, int32_t h, size_t i);
/* Charge n FLOPs of kv-head boundary work to its query heads, split evenly. */
static void charge_kv(AttnCore *ac, int32_t l, int32_t g, FlopCat c, double n)
{
    for (int32_t j = 0; j < ac->group; j++)
        callfl_at(ac, l, g * ac->group + j)[c] += n / ac->group;
}
/* The same for work on row i of the call (its own token). */
static void charge_kv_row(AttnCore *ac, int32_t l, int32_t g, size_t i, FlopCat c, double n);

/* ---- bounds from the state of a side ---- */

/* All ranks' bounds on ||X (I - P_r)||_2^2 of a side, r = 0..D (D + 1
 * values): bounds_side_res2 (bounds.h) on the side's state, non-increasing
 * in r. */
static void side_res2_all(const Side *s, int32_t D, double *res2)
{
    BoundsSide v = {s->lam, s->E, s->En, s->tot, s->tot_new, s->trace_ref, s->n_ref, s->w};
    bounds_side_res2(&v, D, res2);
}

static double side_total(const Side *s, int32_t D)
{
    (void)D;
    return s->tot;
}

/* Relative tail bound from a res2 value: sqrt(res2 / ||X||_F^2) (0 when X
 * is zero), <= 1; non-increasing in r when res2 is. */
static double side_rel(const Side *s, int32_t D, double res2)
{
    double tot = side_total(s, D);
    if (!(tot > 0.0))
        return 0.0;
    double b = sqrt(res2 / tot);
    return b < 1.0 ? b : 1.0;
}

/* Fraction of the energy kept at rank r: exact for r <= w; beyond the
 * projected width an estimate from the last eigensolve's spectrum (used only
 * to choose ranks, never as a bound). */
static double side_energy(const Side *s, int32_t D, int32_t r)
{
    if (r >= D)
        return 1.0;
    double tot = s->tot, kept = 0.0;
    if (!(tot > 0.0))
        return 1.0;
    if (r <= s->w) {
        for (int32_t j = 0; j < r; j++)
            kept += s->E[j];
    } else {
        double lt = 0.0;
        for (int32_t j = 0; j < D; j++)
            lt += s->lam[j], kept += j < r ? s->lam[j] : 0.0;
        return lt > 0.0 ? kept / lt : 1.0;
    }
    double e = kept / tot;
    return e > 1.0 ? 1.0 : e;
}

/* What a decision's records read of a side at a boundary: side_rel of
 * each rank's res2 and side_energy of each rank, r = 0..D, into vrel, ven. */
static void side_views(Side *s, int32_t D)
{
    double res2[4097];
    side_res2_all(s, D, res2);
    for (int32_t r = 0; r <= D; r++) {
        s->vrel[r] = side_rel(s, D, res2[r]);
        s->ven[r] = side_energy(s, D, r);
    }
}

/* A head's records of its kv head's sides at the boundary (side_views of
 * both taken): the keys' energy kept at its rank, the larger relative
 * tail bound of keys and values there (proven; 0 at head_dim) and the
 * keys' residual sin-theta bound when the basis was kept. */
static void head_side_stats(HeadState *hs, const Kv *kv, int32_t D)
{
    const Side *sk = &kv->s[SIDE_K], *sv = &kv->s[SIDE_V];
    int32_t r = hs->rank < D ? hs->rank : D;
    hs->energy = sk->ven[r];
    hs->tail_rel = r >= D ? 0.0 : (sk->vrel[r] > sv->vrel[r] ? sk->vrel[r] : sv->vrel[r]);
    hs->sin_theta = sk->refresh == REFRESH_KEEP ? sk->sinr[r] : 0.0;
}

/* The forward's attention scale for layer l (mirrors forward.c). */
static float layer_scale(const AttnCore *ac, int32_t l)
{
    float scale = 1.0f;
    if (ac->mc.scale_attn)
        scale = (float)(1.0 / sqrt((double)ac->D));
    if (ac->mc.scale_attn_by_layer)
        scale /= (float)(l + 1);
    return scale;
}

/* ---- Performer FAVOR+ (Choromanski et al., "Rethinking Attention with
 * Performers", ICLR 2021): positive random features
 *   phi(x)_i = exp(w_i . x - ||x||^2 / 2) / sqrt(M),  E[phi(x).phi(y)] = exp(x.y),
 * with x = sqrt(scale) q (or k), rows w_i orthogonal within blocks of D and
 * scaled by chi(D)-distributed norms (Sec. 2.4, "ORFs"). Causal attention by
 * prefix sums S = sum_j phi(k_j) v_j^T, z = sum_j phi(k_j) (Sec. 2.6). The
 * shared 1/sqrt(M) cancels; a running maximum shift keeps exp() finite and
 * cancels in the ratio too (S and z are rescaled when the maximum grows). */

/* ---- causal Nystrom (after Xiong et al., "Nystromformer", AAAI 2021): with
 * landmark queries Lq and keys Lk (m x D),
 *   o ~= softmax(q Lk^T) pinv(softmax(Lq Lk^T)) softmax(Lq K^T) V.
 * The public Nystromformer takes landmarks as segment means over the whole
 * sequence, which sees the future. Here landmark i is the mean query / key of
 * one COMPLETED segment (the newest M segments, replacing the oldest), the
 * third factor is kept causally as prefix sums S_i = sum_j e^{Lq_i.k_j s - c_i} v_j,
 * z_i = sum_j e^{...} over keys seen so far, and the first segment is exact. */

static void orf_fill(float *W, int32_t M, int32_t D, uint64_t seed)
{
    uint64_t s = seed;
    double *blk = malloc((size_t)D * D * sizeof *blk), *tau = malloc((size_t)D * sizeof *tau);
    if (!blk || !tau) {
        free(blk), free(tau);
        return;
    }
    for (int32_t row = 0; row < M; row += D) {
        for (int32_t i = 0; i < D * D; i++) {
            double u1 = rng_unit_open(rng_splitmix64(&s)), u2 = rng_unit(rng_splitmix64(&s));
            blk[i] = rng_box_muller(u1, u2);
        }
        LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, D, D, blk, D, tau);
        LAPACKE_dorgqr(LAPACK_ROW_MAJOR, D, D, D, blk, D, tau);
        for (int32_t i = 0; i < D && row + i < M; i++) {
            /* norm ~ chi(D): the norm of a fresh Gaussian vector */
            double nn = 0.0;
            for (int32_t j = 0; j < D; j++) {
                double u1 = rng_unit_open(rng_splitmix64(&s)),
                       u2 = rng_unit(rng_splitmix64(&s));
                double g = rng_box_muller(u1, u2);
                nn += g * g;
            }
            nn = sqrt(nn);
            for (int32_t j = 0; j < D; j++) /* row i of Q (orthonormal rows) */
                W[(size_t)(row + i) * D + j] = (float)(blk[(size_t)i * D + j] * nn);
        }
    }
    free(blk), free(tau);
}

/* Exponent of feature i for x (D floats): w_i . x sqrt(s) - s ||x||^2 / 2. */
static void perf_logits(const float *W, int32_t M, int32_t D, const float *x, float s,
                        double *out)
{
    double xx = 0.0;
    for (int32_t j = 0; j < D; j++)
        xx += (double)x[j] * x[j];
    double rs = sqrt((double)s);
    for (int32_t i = 0; i < M; i++) {
        double a = 0.0;
        for (int32_t j = 0; j < D; j++)
            a += (double)W[(size_t)i * D + j] * x[j];
        out[i] = a * rs - 0.5 * s * xx;
    }
}

static void perf_reset(Perf *p, int32_t M, int32_t D)
{
    memset(p->S, 0, (size_t)M * D * sizeof *p->S);
    memset(p->z, 0, (size_t)M * sizeof *p->z);
    p->c = -INFINITY;
}

/* Performer outputs of rows pos0..pos0+n-1 of layer l into ac->bl_out. */
static void perf_layer(AttnCore *ac, int32_t l, size_t pos0, size_t n, const float *q)
{
    int32_t D = ac->D, M = ac->cfg.method.m, H = ac->H;
    float s = layer_scale(ac, l);
    double *lg = malloc((size_t)M * sizeof *lg);
    if (!lg)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t t = pos0 + i;
        for (int32_t g = 0; g < ac->K; g++) {
            Perf *p = &ac->perf[(size_t)l * ac->K + g];
            const float *k = ac->cache_k(ac->cache_ctx, l, g) + t * D;
            const float *v = ac->cache_v(ac->cache_ctx, l, g) + t * D;
            perf_logits(p->W, M, D, k, s, lg);
            charge_kv_row(ac, l, g, i, FLOPS_BASIS_PROJ, 2.0 * M * D + 2.0 * D + 2.0 * M);
            double mx = lg[0];
            for (int32_t a = 1; a < M; a++)
                mx = lg[a] > mx ? lg[a] : mx;
            if (mx > p->c) {
                if (isfinite(p->c)) {
                    double f = exp(p->c - mx);
                    for (int32_t a = 0; a < M * D; a++)
                        p->S[a] *= f;
                    for (int32_t a = 0; a < M; a++)
                        p->z[a] *= f;
                    charge_kv_row(ac, l, g, i, FLOPS_VALUE, (double)M * D + M);
                }
                p->c = mx;
            }
            for (int32_t a = 0; a < M; a++) {
                double ph = exp(lg[a] - p->c);
                p->z[a] += ph;
                for (int32_t j = 0; j < D; j++)
                    p->S[(size_t)a * D + j] += ph * v[j];
            }
            charge_kv_row(ac, l, g, i, FLOPS_VALUE, 2.0 * M * D + M);
        }
        for (int32_t h = 0; h < H; h++) {
            Perf *p = &ac->perf[(size_t)l * ac->K + h / ac->group];
            const float *qq = q + i * (size_t)H * D + (size_t)h * D;
            perf_logits(p->W, M, D, qq, s, lg);
            double mx = lg[0];
            for (int32_t a = 1; a < M; a++)
                mx = lg[a] > mx ? lg[a] : mx;
            double den = 0.0;
            float *o = ac->bl_out + (i * H + h) * (size_t)D;
            double num[4096];
            for (int32_t j = 0; j < D; j++)
                num[j] = 0.0;
            for (int32_t a = 0; a < M; a++) {
                double ps = exp(lg[a] - mx);
                den += ps * p->z[a];
                for (int32_t j = 0; j < D; j++)
                    num[j] += ps * p->S[(size_t)a * D + j];
            }
            for (int32_t j = 0; j < D; j++)
                o[j] = den > 0.0 ? (float)(num[j] / den) : 0.0f;
            double *cf = row_at(ac, l, h, i)->fl;
            cf[FLOPS_BASIS_PROJ] += 2.0 * M * D + 2.0 * D + 2.0 * M;
            cf[FLOPS_VALUE] += 2.0 * M * D;
            cf[FLOPS_SOFTMAX] += 2.0 * M + D;
        }
    }
    free(lg);
}

/* Nystrom: at a boundary at pos (segment seg - 1 completed), add a landmark. */
static DrrlStatus nys_boundary(AttnCore *ac, int32_t l, int64_t pos, DrrlError *err)
{
    int32_t D = ac->D, M = ac->cfg.method.m, T = ac->cfg.segment;
    float s = layer_scale(ac, l);
    for (int32_t h = 0; h < ac->H; h++) {
        Nys *y = &ac->nys[(size_t)l * ac->H + h];
        int32_t g = h / ac->group;
        const float *K = ac->cache_k(ac->cache_ctx, l, g),
                    *V = ac->cache_v(ac->cache_ctx, l, g);
        int32_t slot = y->next;
        y->next = (y->next + 1) % M;
        if (y->m_used < M)
            y->m_used++;
        int64_t from = pos - T;
        for (int32_t j = 0; j < D; j++) {
            double ks = 0.0;
            for (int64_t t = from; t < pos; t++)
                ks += K[t * D + j];
            y->Lk[(size_t)slot * D + j] = (float)(ks / T);
            y->Lq[(size_t)slot * D + j] = (float)(y->qsum[j] / T);
            y->qsum[j] = 0.0;
        }
        /* rebuild row slot of the prefix sums over keys 0..pos-1 */
        const float *lq = y->Lq + (size_t)slot * D;
        double c = -INFINITY;
        for (int64_t t = 0; t < pos; t++) {
            double a = 0.0;
            for (int32_t j = 0; j < D; j++)
                a += (double)lq[j] * K[t * D + j];
            a *= s;
            c = a > c ? a : c;
        }
        double z = 0.0, *S = y->S + (size_t)slot * D;
        for (int32_t j = 0; j < D; j++)
            S[j] = 0.0;
        for (int64_t t = 0; t < pos; t++) {
            double a = 0.0;
            for (int32_t j = 0; j < D; j++)
                a += (double)lq[j] * K[t * D + j];
            double e = exp(a * s - c);
            z += e;
            for (int32_t j = 0; j < D; j++)
                S[j] += e * V[t * D + j];
        }
        y->z[slot] = z, y->c[slot] = c;
        double *cf = callfl_at(ac, l, h);
        cf[FLOPS_ROTATE] += 2.0 * (2.0 * pos * D) + 2.0 * pos * D + 3.0 * pos + 2.0 * T * D;
        /* landmark kernel A = softmax_rows(Lq Lk^T s) and its pseudo-inverse */
        int32_t m = y->m_used;
        double *A = malloc((size_t)m * m * sizeof *A), *sv = malloc((size_t)m * sizeof *sv);
        double *U = malloc((size_t)m * m * sizeof *U), *Vt = malloc((size_t)m * m * sizeof *Vt);
        if (!A || !sv || !U || !Vt) {
            DRRL_FREE(A, sv, U, Vt);
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (nystrom)");
        }
        for (int32_t a = 0; a < m; a++) {
            double mx = -INFINITY, zz = 0.0;
            for (int32_t b = 0; b < m; b++) {
                double d = 0.0;
                for (int32_t j = 0; j < D; j++)
                    d += (double)y->Lq[(size_t)a * D + j] * y->Lk[(size_t)b * D + j];
                A[a * m + b] = d * s;
                mx = A[a * m + b] > mx ? A[a * m + b] : mx;
            }
            for (int32_t b = 0; b < m; b++)
                zz += (A[a * m + b] = exp(A[a * m + b] - mx));
            for (int32_t b = 0; b < m; b++)
                A[a * m + b] /= zz;
        }
        cf[FLOPS_ROTATE] += 2.0 * m * m * D + flops_softmax((double)m * m);
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', m, m, A, m, sv, U, m, Vt, m);
        if (info != 0) {
            DRRL_FREE(A, sv, U, Vt);
            return drrl_error(err, DRRL_E_INTERNAL, "attn_core: nystrom pinv failed (info %d)",
                              (int)info);
        }
        /* pinv = V diag(1/sv) U^T, dropping sv below 1e-6 sv_max */
        for (int32_t a = 0; a < m; a++)
            for (int32_t b = 0; b < m; b++) {
                double acc = 0.0;
                for (int32_t k = 0; k < m; k++)
                    if (sv[k] > 1e-6 * sv[0])
                        acc += Vt[k * m + a] / sv[k] * U[b * m + k];
                y->Ap[a * M + b] = acc;
            }
        cf[FLOPS_EIG] += flops_svd(m, m) + 2.0 * m * m * m;
        DRRL_FREE(A, sv, U, Vt);
    }
    return DRRL_OK;
}

/* Landmark weights of query q (D floats) at scale s over the y->m_used
 * landmarks in force: w = softmax(q Lk^T s) pinv(A), into w[m_used]. */
static void nys_weights(const Nys *y, const float *q, int32_t D, int32_t M, float s, double *w)
{
    int32_t m = y->m_used;
    double u[METHOD_NYSTROM_MAX], mx = -INFINITY, zz = 0.0;
    for (int32_t a = 0; a < m; a++) {
        double d = 0.0;
        for (int32_t j = 0; j < D; j++)
            d += (double)q[j] * y->Lk[(size_t)a * D + j];
        u[a] = d * s;
        mx = u[a] > mx ? u[a] : mx;
    }
    for (int32_t a = 0; a < m; a++)
        zz += (u[a] = exp(u[a] - mx));
    for (int32_t a = 0; a < m; a++)
        u[a] /= zz;
    for (int32_t b = 0; b < m; b++) {
        double acc = 0.0;
        for (int32_t a = 0; a < m; a++)
            acc += u[a] * y->Ap[a * M + b];
        w[b] = acc;
    }
}

/* Nystrom outputs of rows pos0..pos0+n-1 (segment >= 1) into ac->bl_out. */
static void nys_layer(AttnCore *ac, int32_t l, size_t pos0, size_t n, const float *q)
{
    int32_t D = ac->D, M = ac->cfg.method.m, H = ac->H;
    float s = layer_scale(ac, l);
    for (size_t i = 0; i < n; i++) {
        size_t t = pos0 + i;
        for (int32_t h = 0; h < H; h++) {
            Nys *y = &ac->nys[(size_t)l * H + h];
            int32_t g = h / ac->group, m = y->m_used;
            const float *k = ac->cache_k(ac->cache_ctx, l, g) + t * D;
            const float *v = ac->cache_v(ac->cache_ctx, l, g) + t * D;
            const float *qq = q + i * (size_t)H * D + (size_t)h * D;
            double *cf = row_at(ac, l, h, i)->fl;
            for (int32_t j = 0; j < D; j++)
                y->qsum[j] += qq[j];
            /* add key t to every landmark row */
            for (int32_t a = 0; a < m; a++) {
                double d = 0.0;
                for (int32_t j = 0; j < D; j++)
                    d += (double)y->Lq[(size_t)a * D + j] * k[j];
                d *= s;
                if (d > y->c[a]) {
                    double f = exp(y->c[a] - d);
                    for (int32_t j = 0; j < D; j++)
                        y->S[(size_t)a * D + j] *= f;
                    y->z[a] *= f;
                    y->c[a] = d;
                    cf[FLOPS_VALUE] += D + 1.0;
                }
                double e = exp(d - y->c[a]);
                y->z[a] += e;
                for (int32_t j = 0; j < D; j++)
                    y->S[(size_t)a * D + j] += e * v[j];
            }
            cf[FLOPS_SCORES] += 2.0 * m * D;
            cf[FLOPS_VALUE] += 2.0 * m * D + 2.0 * m;
            /* w = softmax(q Lk^T s) pinv(A), o = sum_a w_a S_a / z_a */
            double w[METHOD_NYSTROM_MAX];
            nys_weights(y, qq, D, M, s, w);
            float *o = ac->bl_out + (i * H + h) * (size_t)D;
            for (int32_t j = 0; j < D; j++) {
                double acc = 0.0;
                for (int32_t a = 0; a < m; a++)
                    acc += w[a] * y->S[(size_t)a * D + j] / y->z[a];
                o[j] = (float)acc;
            }
            cf[FLOPS_SCORES] += 2.0 * m * D;
            cf[FLOPS_SOFTMAX] += flops_softmax(m);
            cf[FLOPS_VALUE] += 2.0 * m * m + 2.0 * m * D + m;
        }
    }
}

/* ---- layer_begin: boundary, refresh, projection, decision ---- */

/* Column buffers (column j at j * ld, rows contiguous: the projected
 * caches P and the guard's columns) grow to a capacity doubled from 256 (or
 * from cap) until it holds need rows. */
static size_t cols_cap(size_t cap, size_t need)
{
    cap = cap ? cap : 256;
    while (cap < need)
        cap *= 2;
    return cap;
}

/* *x regrown into a fresh buffer of `bytes`, column stride old_ld -> new_ld,
 * the first nrows rows of its first ncols columns kept (*x NULL: nothing to
 * keep). 0, or -1 when out of memory (*x left as it was). */
static int cols_regrow(float **x, size_t old_ld, int32_t ncols, int64_t nrows, size_t new_ld,
                       size_t bytes)
{
    float *nx = malloc(bytes);
    if (!nx)
        return -1;
    for (int32_t j = 0; *x && j < ncols; j++)
        memcpy(nx + (size_t)j * new_ld, *x + (size_t)j * old_ld, (size_t)nrows * sizeof *nx);
    free(*x);
    *x = nx;
    return 0;
}

/* A projected cache holds direction j of row t at P[j * pld + t]. pld is
 * the capacity plus LOWRANK_KERNEL_LD_PAD, not a power of two. */
#define PROJ_PAD LOWRANK_KERNEL_LD_PAD

static DrrlStatus grow_proj(AttnCore *ac, size_t need, DrrlError *err)
{
    if (need <= ac->pcap)
        return DRRL_OK;
    size_t cap = cols_cap(ac->pcap, need);
    size_t ld = cap + PROJ_PAD, bytes;
    if (drrl_size_mul(ld, (size_t)ac->D * sizeof(float), &bytes))
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: cache size overflow");
    for (size_t i = 0; i < (size_t)ac->L * ac->K; i++)
        for (int si = 0; si < 2; si++) {
            Side *s = &ac->kv[i].s[si];
            if (cols_regrow(&s->P, ac->pld, ac->D, s->n_proj, ld, bytes))
                return drrl_error(err, DRRL_E_NOMEM,
                                  "attn_core: out of memory for a %zu-row "
                                  "projected cache",
                                  cap);
        }
    ac->pcap = cap, ac->pld = ld;
    return DRRL_OK;
}

/* P[j * ld + t] = sum_d xt[d][t] B[d][j] for directions j0 <= j < j1 and
 * rows t0 <= t < t1 of a transposed block of m rows, the sum in d order. */
DRRL_HOT static void project_block(const float *xt, size_t m, int32_t D, const float *B,
                                   int32_t j0, int32_t j1, size_t t0, size_t t1, float *P,
                                   size_t ld)
{
    for (int32_t j = j0; j < j1; j++) {
        float *p = P + (size_t)j * ld;
        for (size_t t = t0; t < t1; t++)
            p[t] = 0.0f;
        for (int32_t d = 0; d < D; d++) {
            const float b = B[(size_t)d * D + (size_t)j], *xr = xt + (size_t)d * m;
            for (size_t t = t0; t < t1; t++)
                p[t] += xr[t] * b;
        }
    }
}

/* P[j * ld + t] = sum_d x[t][d] B[d][j] for rows t < n and directions
 * j < w, the sum in d order, vectorised over rows (a block of x transposed
 * first): each row's projection the same bits whatever rows come with it
 * (an sgemm of a segment's 128 rows cost more in its set-up than in its
 * 2 D w n flops). */
DRRL_HOT static void project_rows(const float *x, size_t n, int32_t D, const float *B,
                                  int32_t w, float *P, size_t ld)
{
    enum { XT = 4096 };
    float xt[XT]; /* (D, nb): a block of rows, transposed */
    size_t nb = XT / (size_t)D > 0 ? XT / (size_t)D : 1;
    if (nb > 64)
        nb = 64;
    for (size_t t0 = 0; t0 < n; t0 += nb) {
        size_t m = n - t0 < nb ? n - t0 : nb;
        if ((size_t)D * m > XT) { /* D > XT: one row at a time, in place */
            for (int32_t j = 0; j < w; j++) {
                float a = 0.0f;
                for (int32_t d = 0; d < D; d++)
                    a += x[t0 * (size_t)D + (size_t)d] * B[(size_t)d * D + (size_t)j];
                P[(size_t)j * ld + t0] = a;
            }
            continue;
        }
        for (size_t t = 0; t < m; t++)
            for (int32_t d = 0; d < D; d++)
                xt[(size_t)d * m + t] = x[(t0 + t) * (size_t)D + (size_t)d];
        size_t t1 = 0;
        /* 16 rows by 8 directions at a time, the sums in registers (the
         * same operations per sum, in d order, as the loop below) */
        for (; t1 + 16 <= m; t1 += 16) {
            int32_t j0 = 0;
            for (; j0 + 8 <= w; j0 += 8) {
                float acc[8][16];
                for (int jj = 0; jj < 8; jj++)
                    for (int tt = 0; tt < 16; tt++)
                        acc[jj][tt] = 0.0f;
                for (int32_t d = 0; d < D; d++) {
                    const float *xr = xt + (size_t)d * m + t1, *b = B + (size_t)d * D + j0;
#pragma GCC unroll 8
                    for (int jj = 0; jj < 8; jj++)
                        for (int tt = 0; tt < 16; tt++)
                            acc[jj][tt] += xr[tt] * b[jj];
                }
                for (int jj = 0; jj < 8; jj++)
                    memcpy(P + (size_t)(j0 + jj) * ld + t0 + t1, acc[jj], sizeof acc[jj]);
            }
            project_block(xt, m, D, B, j0, w, t1, t1 + 16, P + t0, ld);
        }
        project_block(xt, m, D, B, 0, w, t1, m, P + t0, ld);
    }
}

/* Project rows [from, to) of x (raw cache, (len, D)) into s->P at the
 * current width w: P[0:w, from:to] = B[:, :w]^T x[from:to]^T, 2 D w per row. */
static void side_project(AttnCore *ac, Side *s, const float *x, int64_t from, int64_t to,
                         int32_t l, int32_t g)
{
    int32_t D = ac->D, w = s->w;
    if (to <= from)
        return;
    size_t n = (size_t)(to - from);
    if (w > 0) {
        project_rows(x + (size_t)from * D, n, D, s->B, w, s->P + from, ac->pld);
        s->fl_row[FLOPS_BASIS_PROJ] += 2.0 * D * w * (double)n;
    }
    for (int32_t j = 0; j < w; j++) {
        const float *p = s->P + (size_t)j * ac->pld;
        double e = 0.0;
        for (int64_t t = from; t < to; t++)
            e += (double)p[t] * p[t];
        s->E[j] += e, s->En[j] += e;
    }
    s->n_proj = to;
}

/* Widen the projected cache to w_need directions: columns w..w_need-1 of
 * every cached row, re-projected from the raw cache (which the forward keeps
 * for exact attention), 2 t D (w_need - w) FLOPs. After an eigensolve w is 0,
 * so this is the cache refresh: 2 t D w, never more than rotating the cache,
 * (K B_old)(B_old^T B_new) at 2 t D^2 + 2 D^3. */
static void side_widen(AttnCore *ac, Side *s, const float *x, int32_t w_need, int32_t l,
                       int32_t g)
{
    int32_t D = ac->D, w = s->w, dw = w_need - w;
    int n = (int)s->n_proj;
    if (dw <= 0)
        return;
    if (n > 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, dw, n, D, 1.0f, s->B + w, D, x, D,
                    0.0f, s->P + (size_t)w * ac->pld, (int)ac->pld);
        s->fl[FLOPS_ROTATE] += 2.0 * n * D * dw;
    }
    for (int32_t j = w; j < w_need; j++) {
        const float *p = s->P + (size_t)j * ac->pld;
        double e = 0.0, en = 0.0;
        for (int64_t t = 0; t < n; t++) {
            double v = (double)p[t] * p[t];
            e += v;
            if (t >= s->n_ref)
                en += v;
        }
        s->E[j] = e, s->En[j] = en;
    }
    s->w = w_need;
}

/* Residual Davis-Kahan bounds (bounds_sin_theta_residual) for every rank,
 * from C = B^T (G - Gref) B in the basis in force (Gref's eigenvectors):
 * off(r) = ||C[r:, :r]||_F, comp(r) = ||C[r:, r:]||_F. O(D^3) with BLAS. */
static void side_sin_residual(AttnCore *ac, Side *s, double *dGm, double *tmp, double *Cm,
                              int32_t l, int32_t g)
{
    int32_t D = ac->D;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, dGm, D, s->Bd, D, 0.0,
                tmp, D);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, D, D, 1.0, s->Bd, D, tmp, D, 0.0,
                Cm, D);
    s->fl[FLOPS_EIG] += 4.0 * D * D * D;
    /* O(D^2): tmp[a] = sum_{b<r} C_ab^2 grows with r, row totals fixed */
    s->sinr[0] = s->sinr[D] = 0.0;
    if (D < 2)
        return;
    double allow = bounds_gram_allowance(s->trace_ref, s->n_gram, D);
    double *rowlo = tmp, *rowtot = tmp + D; /* tmp has D*D >= 2D room (D >= 2) */
    for (int32_t a = 0; a < D; a++) {
        double t = 0.0;
        for (int32_t b = 0; b < D; b++)
            t += Cm[(size_t)a * D + b] * Cm[(size_t)a * D + b];
        rowtot[a] = t, rowlo[a] = 0.0;
    }
    for (int32_t r = 1; r < D; r++) {
        for (int32_t a = 0; a < D; a++)
            rowlo[a] += Cm[(size_t)a * D + r - 1] * Cm[(size_t)a * D + r - 1];
        double off = 0.0, comp = 0.0;
        for (int32_t a = r; a < D; a++)
            off += rowlo[a], comp += rowtot[a] - rowlo[a];
        if (comp < 0.0)
            comp = 0.0;
        double b1 = bounds_sin_theta_residual(s->lam[r - 1] - s->lam[r], sqrt(off) + allow,
                                              sqrt(comp) + allow);
        double b2 = bounds_sin_theta(s->lam, D, r, s->dG);
        s->sinr[r] = b1 < b2 ? b1 : b2;
    }
    s->sinr[0] = s->sinr[D] = 0.0;
}

/* Test (1), (3) or (4) of side_boundary: is the kept basis's residual
 * energy tot - sum_{j<r} E_j within (1 + tol) of the lower bound
 * sum_{j>=r} ev_j of the Eckart-Young optimum (plus the rounding allowance)
 * at every rank r < D in use by the kv group's heads? */
static int side_within_optimum(AttnCore *ac, const Side *s, int32_t l, int32_t g,
                               const double *ev, double tol, double allow)
{
    int32_t D = ac->D;
    for (int32_t j = 0; j < ac->group; j++) {
        int32_t r = hs_at(ac, l, g * ac->group + j)->rank;
        if (r >= D || r > s->w)
            continue;
        double kept = 0.0, ey = 0.0;
        for (int32_t q = 0; q < r; q++)
            kept += s->E[q];
        for (int32_t q = r; q < D; q++)
            ey += ev[q];
        if (!(s->tot - kept <= (1.0 + tol) * ey + allow))
            return 0;
    }
    return 1;
}

/* Adopt a recomputed basis (eigenvectors Bn, eigenvalues lam of G) at
 * boundary pos: G becomes the reference, every cached row is to be
 * re-projected (width 0 until side_widen). */
static void side_adopt(Side *s, int32_t D, const double *lam, const double *Bn, int64_t pos)
{
    size_t dd = (size_t)D * D;
    double tr = 0.0;
    for (int32_t j = 0; j < D; j++)
        tr += s->G[(size_t)j * D + j];
    memcpy(s->Bd, Bn, dd * sizeof *Bn);
    for (size_t i = 0; i < dd; i++)
        s->B[i] = (float)Bn[i];
    memcpy(s->lam, lam, (size_t)D * sizeof *lam);
    s->lamg_new = 0;
    memcpy(s->Gref, s->G, dd * sizeof *s->G);
    s->trace_ref = tr;
    s->n_ref = s->n_gram;
    s->dG = 0.0;
    s->has_basis = 1;
    s->n_proj = pos; /* every cached row, at width 0 until side_widen */
    s->w = 0;
    s->tot_new = 0.0;
    memset(s->E, 0, (size_t)D * sizeof *s->E);
    memset(s->En, 0, (size_t)D * sizeof *s->En);
    memset(s->sinr, 0, ((size_t)D + 1) * sizeof *s->sinr);
}

/* Boundary at position pos (a multiple of T, > 0) for one side of layer l,
 * kv head g: fold the completed segment into the Gram, then decide, cheapest
 * test first (details at the tests):
 *   KEEP when the kept basis's exact residual energy tot - sum_{j<r} E_j is
 *     within (1 + rot_tol) of a lower bound on the Eckart-Young optimum
 *     (Weyl, no eigensolve), or when Davis-Kahan (the smaller of the plain
 *     and the residual form, bounds.h) bounds the rotation of the top-r
 *     subspace by rot_tol, or when the residual is within (1 + rot_tol) of
 *     a lower bound from the eigenvalues of an earlier boundary's G (Weyl
 *     again, no eigensolve), or of the optimum from G's eigenvalues, at
 *     every rank r < D in use by the kv group's heads;
 *   else RECOMPUTE: eigenvectors, adopt the new basis; the cache is then
 *     re-projected at the width in use (side_widen) before the next rows.
 * rot_tol < 0 always recomputes. Runs on a worker thread (one per side at a
 * time); touches only this side. */
static void side_boundary(AttnCore *ac, int32_t l, int32_t g, int si, int64_t pos)
{
    Side *s = &kv_at(ac, l, g)->s[si];
    int32_t D = ac->D;
    size_t dd = (size_t)D * D;
    double tol = ac->cfg.rot_tol;
    const float *x =
        si == SIDE_K ? ac->cache_k(ac->cache_ctx, l, g) : ac->cache_v(ac->cache_ctx, l, g);
    basis_gram_add(s->G, x + (size_t)s->n_gram * D, pos - s->n_gram, D, D);
    s->fl[FLOPS_GRAM] += flops_gram((double)(pos - s->n_gram), D);
    s->n_gram = pos;
    basis_gram_symmetrize(s->G, D);
    double *dGm = malloc(dd * sizeof *dGm), *tmp = malloc(dd * sizeof *tmp);
    double *Cm = malloc(dd * sizeof *Cm), *lam = malloc((size_t)D * sizeof *lam);
    double *Bn = malloc(dd * sizeof *Bn);
    if (!dGm || !tmp || !Cm || !lam || !Bn) {
        s->st =
            drrl_error(&s->err, DRRL_E_NOMEM, "attn_core: out of memory for a basis refresh");
        goto done;
    }
    s->refresh = REFRESH_RECOMPUTE;
    if (s->has_basis) {
        double e = 0.0;
        for (size_t i = 0; i < dd; i++) {
            dGm[i] = s->G[i] - s->Gref[i];
            e += dGm[i] * dGm[i];
        }
        s->dG = sqrt(e) + bounds_gram_allowance(s->trace_ref, s->n_gram, D);
        s->fl[FLOPS_GRAM] += 3.0 * (double)dd;
    }
    if (s->has_basis && tol >= 0.0) {
        /* Plain Davis-Kahan for every rank (O(D)); the residual form below
         * replaces it when computed. */
        for (int32_t r = 1; r < D; r++)
            s->sinr[r] = bounds_sin_theta(s->lam, D, r, s->dG);
        s->sinr[0] = s->sinr[D] = 0.0;
        double tr = 0.0;
        for (int32_t j = 0; j < D; j++)
            tr += s->G[(size_t)j * D + j];
        double allow = bounds_gram_allowance(tr, s->n_gram, D) + BOUNDS_PROJ_SLACK * s->tot;
        /* Four tests, cheapest first; keep at the first that passes.
         * (1), (3) and (4): is the kept basis within (1 + tol) of the optimum
         * sum_{j>=r} lambda_j(G) at every rank in use? (1) compares with a
         * lower bound of the optimum that needs no eigensolve: G = Gref + dG
         * with dG PSD, so lambda_j(G) >= lambda_j(Gref) for every j (Weyl's
         * monotonicity, Horn & Johnson Cor. 4.3.12); O(D). (2) Davis-Kahan
         * in residual form bounds the rotation of every rank in use by tol;
         * O(D^3) in BLAS. (3) is (1) with the eigenvalues of G at the last
         * boundary that ran (4) (G then is G now less the rows added since,
         * so the same monotonicity holds, and that G's trace and row count
         * are at most G's, so the same allowance covers its rounding); it
         * runs only when those are newer than Gref's (else it is (1)). It
         * spares eigensolves of (4), which keeps most bases: `drrl run
         * --method fixed:8` on the Brown test text ran (4) 3856 times at
         * L = 8192 and 7841 at 16384 without (3), 2634 and 3812 with it.
         * (4) compares with G's own eigenvalues (no vectors), kept for (3). (3) and (4) both
         * run after (2), so the residual bounds of (2) are there whichever keeps. */
        int keep = 0;
        for (int test = 1; test <= 4 && !keep; test++) {
            const double *ev = s->lam;
            if (test == 2) {
                side_sin_residual(ac, s, dGm, tmp, Cm, l, g);
                keep = 1;
                for (int32_t j = 0; j < ac->group && keep; j++) {
                    int32_t r = hs_at(ac, l, g * ac->group + j)->rank;
                    if (r > 0 && r < D && s->sinr[r] > tol)
                        keep = 0;
                }
                continue;
            }
            if (test == 3) {
                if (!s->lamg_new)
                    continue;
                ev = s->lamg;
            }
            if (test == 4) {
                if ((s->st = basis_eigvals_batch(s->G, 1, D, lam, &s->err)))
                    goto done;
                s->fl[FLOPS_EIG] += flops_eigvals(D);
                s->n_eigvals++;
                memcpy(s->lamg, lam, (size_t)D * sizeof *lam);
                s->lamg_new = 1;
                ev = lam;
            }
            s->fl[FLOPS_EIG] += 2.0 * D;
            keep = side_within_optimum(ac, s, l, g, ev, tol, allow);
            s->n_keep_stale += keep && test == 3;
        }
        if (keep) {
            s->refresh = REFRESH_KEEP;
            s->n_keep++;
            goto done;
        }
    }
    if ((s->st = basis_eig_batch(s->G, 1, D, lam, Bn, &s->err)))
        goto done;
    s->fl[FLOPS_EIG] += flops_eig(D);
    s->n_recompute++;
    side_adopt(s, D, lam, Bn, pos);
done:
    DRRL_FREE(dGm, tmp, Cm, lam, Bn);
}

/* The new rows [pos0, pos0 + n) of one side: norms, widening to w_need
 * directions, projection. Worker thread; touches only this side. */
static void side_advance(AttnCore *ac, int32_t l, int32_t g, int si, size_t pos0, size_t n,
                         int32_t w_need)
{
    Side *s = &kv_at(ac, l, g)->s[si];
    const float *x =
        si == SIDE_K ? ac->cache_k(ac->cache_ctx, l, g) : ac->cache_v(ac->cache_ctx, l, g);
    for (size_t t = pos0; t < pos0 + n; t++) {
        double r2 = 0.0;
        for (int32_t j = 0; j < ac->D; j++)
            r2 += (double)x[t * ac->D + j] * x[t * ac->D + j];
        if (sqrt(r2) > s->rowmax)
            s->rowmax = sqrt(r2);
        s->tot += r2, s->tot_new += r2;
    }
    if (s->has_basis) {
        if (w_need > s->w)
            side_widen(ac, s, x, w_need, l, g);
        side_project(ac, s, x, s->n_proj, (int64_t)(pos0 + n), l, g);
    }
}

/* The boundary at pos of the 2 K sides of layers [l0, l1), one task per
 * side on the bound forward's threads. Each side's work is sequential code
 * on one thread, so results do not depend on the thread count. */
typedef struct SideTask {
    AttnCore *ac;
    int32_t l0;
    int64_t pos;
} SideTask;

static void side_task(void *arg, size_t i, int worker)
{
    (void)worker;
    SideTask *t = arg;
    size_t ns = 2 * (size_t)t->ac->K;
    side_boundary(t->ac, t->l0 + (int32_t)(i / ns), (int32_t)(i % ns / 2), (int)(i % 2),
                  t->pos);
}

static void sides_clear(AttnCore *ac, int32_t l);
static DrrlStatus sides_merge(AttnCore *ac, int32_t l, DrrlError *err);

static DrrlStatus run_boundaries(AttnCore *ac, int32_t l0, int32_t l1, int64_t pos,
                                 DrrlError *err)
{
    for (int32_t l = l0; l < l1; l++)
        sides_clear(ac, l);
    /* tiny work (small heads) is not worth a thread */
    int nt = (size_t)ac->D * ac->D * 128 < 65536 ? 1 : core_threads(ac);
    SideTask task = {ac, l0, pos};
    core_parallel(ac, (size_t)(l1 - l0) * 2 * (size_t)ac->K, nt, side_task, &task);
    DrrlStatus st = DRRL_OK;
    for (int32_t l = l0; l < l1; l++) {
        DrrlStatus sl = sides_merge(ac, l, st ? NULL : err);
        st = st ? st : sl;
    }
    return st;
}

/* The call's new rows of layer l's sides: side_advance to the width set up
 * in layer_begin, then the side's res2, one side at a time, each claimed by
 * whichever thread comes first. The layer's head tasks (head_fn) run this
 * before their kernels, inside the forward's attention stage: the
 * projection then needs no stage, and no meeting of the threads, of its
 * own (one fewer per layer and call; on a loaded machine each meeting waits
 * for the other thread to be scheduled). A side's advance is sequential
 * code on one thread, so the numbers do not depend on which thread or how
 * many. */
static void advance_help(AttnCore *ac, int32_t l)
{
    for (int32_t i = 0; i < 2 * ac->K; i++) {
        Side *s = &kv_at(ac, l, i / 2)->s[i % 2];
        if (atomic_load_explicit(&s->adv_claim, memory_order_relaxed) ||
            atomic_exchange_explicit(&s->adv_claim, 1, memory_order_acq_rel))
            continue;
        if (s->bnd_pending) {
            /* a folded boundary (boundaries_folded): the side's records
             * as decide would have read them, then the kv head's heads'
             * once both sides are done (before the last side's adv_done,
             * which the heads wait for) */
            Kv *kv = kv_at(ac, l, i / 2);
            side_boundary(ac, l, i / 2, i % 2, s->bnd_pos);
            s->bnd_pending = 0;
            side_views(s, ac->D);
            if (atomic_fetch_add_explicit(&kv->bnd_sides, 1, memory_order_acq_rel) == 1)
                for (int32_t j = 0; j < ac->group; j++)
                    head_side_stats(hs_at(ac, l, i / 2 * ac->group + j), kv, ac->D);
        }
        if (s->st == DRRL_OK)
            side_advance(ac, l, i / 2, i % 2, s->adv_pos0, s->adv_n, s->adv_w);
        side_res2_all(s, ac->D, s->res2);
        atomic_store_explicit(&s->adv_done, 1, memory_order_release);
    }
}

/* Wait until kv head g's two sides of layer l are advanced (by this thread
 * or another that claimed them in advance_help). */
static void advance_wait(AttnCore *ac, int32_t l, int32_t g)
{
    for (int si = 0; si < 2; si++) {
        Side *s = &kv_at(ac, l, g)->s[si];
        for (unsigned k = 0; !atomic_load_explicit(&s->adv_done, memory_order_acquire); k++) {
#if defined(__x86_64__) || defined(__i386__)
            if (k < 4000) {
                __builtin_ia32_pause();
                continue;
            }
#endif
            sched_yield();
        }
    }
}

/* Set up layer l's advance of rows [pos0, pos0 + n) to w_need[g] directions. */
static void advance_begin(AttnCore *ac, int32_t l, size_t pos0, size_t n, const int32_t *w_need)
{
    sides_clear(ac, l);
    for (int32_t i = 0; i < 2 * ac->K; i++) {
        Side *s = &kv_at(ac, l, i / 2)->s[i % 2];
        s->adv_w = w_need[i / 2], s->adv_pos0 = pos0, s->adv_n = n;
        atomic_store_explicit(&s->adv_claim, 0, memory_order_relaxed);
        atomic_store_explicit(&s->adv_done, 0, memory_order_relaxed);
    }
    ac->adv_pending[l] = 1;
}

static void snapshot(AttnCore *ac, int32_t l, size_t p);

/* After the attention stage (or instead of it, if it never ran): any side
 * still to advance advanced here, then the work merged into the ledger. */
static DrrlStatus advance_end(AttnCore *ac, int32_t l, DrrlError *err)
{
    if (!ac->adv_pending[l])
        return DRRL_OK;
    advance_help(ac, l);
    ac->adv_pending[l] = 0;
    /* folded boundaries: the piece's records are complete only now */
    if (boundaries_folded(ac) && ac->call_np > 1)
        snapshot(ac, l, ac->piece[l]);
    return sides_merge(ac, l, err);
}

/* Before a layer's side work: every side's per-call accumulators cleared. */
static void sides_clear(AttnCore *ac, int32_t l)
{
    for (int32_t i = 0; i < 2 * ac->K; i++) {
        Side *s = &kv_at(ac, l, i / 2)->s[i % 2];
        memset(s->fl, 0, sizeof s->fl);
        memset(s->fl_row, 0, sizeof s->fl_row);
        s->n_keep = s->n_recompute = s->n_keep_stale = s->n_eigvals = 0;
        s->st = DRRL_OK;
    }
}

/* After it, on the calling thread in side order: their work into the
 * ledger (boundary work on the segment's first row, the rows' own spread
 * over the call), their counts into the statistics; the first error. */
static DrrlStatus sides_merge(AttnCore *ac, int32_t l, DrrlError *err)
{
    int32_t ns = 2 * ac->K;
    DrrlStatus st = DRRL_OK;
    for (int32_t i = 0; i < ns; i++) {
        Side *s = &kv_at(ac, l, i / 2)->s[i % 2];
        for (int c = 0; c < FLOPS_CAT_COUNT; c++)
            if (s->fl[c] != 0.0)
                charge_kv(ac, l, i / 2, (FlopCat)c, s->fl[c]);
        for (int c = 0; c < FLOPS_CAT_COUNT; c++)
            for (int32_t j = 0; s->fl_row[c] != 0.0 && j < ac->group; j++)
                callrow_at(ac, l, i / 2 * ac->group + j)[c] += s->fl_row[c] / ac->group;
        ac->stats.refresh_keep += s->n_keep;
        ac->stats.refresh_recompute += s->n_recompute;
        ac->stats.refresh_keep_stale += s->n_keep_stale;
        ac->stats.refresh_eigvals += s->n_eigvals;
        if (s->st && st == DRRL_OK) {
            st = s->st;
            if (err)
                *err = s->err;
        }
    }
    return st;
}

/* Bring the guard's columns (GuardCols) of the kv heads of the heads[0..nh)
 * of layer l up to the rows of the completed segments, seg T, for the
 * directions from the side's width up to the largest grid rank below
 * head_dim, where the replay will use them (bases with evidence, guard_head);
 * rebuilt from the raw cache after a new basis. Charged to the guard
 * (2 D per direction and row, split over the group's heads). DRRL_E_NOMEM
 * or DRRL_OK. */
static DrrlStatus guard_cols_update(AttnCore *ac, int32_t l, int64_t seg, const int32_t *heads,
                                    int32_t nh)
{
    int32_t D = ac->D, top = 0;
    int64_t need = seg * ac->cfg.segment;
    for (int32_t i = 0; i < ac->grid.n; i++)
        if (ac->grid.r[i] < D && ac->grid.r[i] > top)
            top = ac->grid.r[i];
    for (int32_t k = 0; k < nh; k++) {
        int32_t g = heads[k] / ac->group;
        if (k > 0 && heads[k - 1] / ac->group == g)
            continue; /* the group's first head did it */
        Kv *kv = kv_at(ac, l, g);
        GuardCols *gc = &ac->gcols[(size_t)l * ac->K + g];
        if (kv->s[SIDE_K].n_ref > (seg - 1) * ac->cfg.segment ||
            kv->s[SIDE_V].n_ref > (seg - 1) * ac->cfg.segment)
            continue; /* no evidence: no replay */
        if ((size_t)need > gc->cap) {
            size_t cap = cols_cap(gc->cap, (size_t)need), bytes;
            if (drrl_size_mul(cap, (size_t)D * sizeof(float), &bytes))
                return DRRL_E_NOMEM;
            for (int si = 0; si < 2; si++)
                if (cols_regrow(&gc->X[si], gc->cap, gc->c1[si] - gc->c0[si], gc->n[si], cap,
                                bytes))
                    return DRRL_E_NOMEM;
            gc->cap = cap;
        }
        double fl = 0.0;
        for (int si = 0; si < 2; si++) {
            Side *s = &kv->s[si];
            if (gc->ver[si] != s->n_ref) {
                gc->ver[si] = s->n_ref, gc->n[si] = 0;
                gc->c0[si] = s->w, gc->c1[si] = top > s->w ? top : s->w;
            }
            int32_t w = gc->c1[si] - gc->c0[si];
            if (w <= 0 || gc->n[si] >= need) {
                gc->n[si] = need;
                continue;
            }
            const float *x = si == SIDE_K ? ac->cache_k(ac->cache_ctx, l, g)
                                          : ac->cache_v(ac->cache_ctx, l, g);
            size_t n = (size_t)(need - gc->n[si]);
            project_rows(x + (size_t)gc->n[si] * D, n, D, s->B + gc->c0[si], w,
                         gc->X[si] + gc->n[si], gc->cap);
            fl += 2.0 * D * w * (double)n;
            gc->n[si] = need;
        }
        for (int32_t j = 0; j < ac->group; j++)
            callfl_at(ac, l, g * ac->group + j)[FLOPS_GUARD] += fl / ac->group;
    }
    return DRRL_OK;
}

/* The guard's estimate for head h of layer l at every grid rank (guard.h):
 * a replay of sampled rows of the segment that just completed, on the bases
 * in force while it ran (so, like the next segment's rows, they attend
 * recent keys that the bases never saw); evaluation stops below the first
 * rank over eps. Its work is charged (FLOPS_GUARD) when the guard binds the
 * method (method_is_guarded: drrl, energy, oracle); for the unguarded ones
 * (fixed, random) it is instrumentation, like the measured error. */
static DrrlStatus guard_head(AttnCore *ac, int32_t l, int32_t h, int64_t seg, double *g,
                             DrrlError *err)
{
    int32_t D = ac->D, S = ac->guard_rows, T = ac->cfg.segment, gk = h / ac->group;
    int64_t pos[GUARD_ROWS_MAX];
    Kv *kv = kv_at(ac, l, gk);
    int32_t ns = guard_sample_rows((seg - 1) * T, T, S, pos);
    if (kv->s[SIDE_K].n_ref > (seg - 1) * T || kv->s[SIDE_V].n_ref > (seg - 1) * T) {
        /* the bases saw the replayed segment's keys: in-sample, no evidence */
        guard_no_evidence(ac->grid.r, ac->grid.n, D, g);
        return DRRL_OK;
    }
    GuardInput in = {.q = ac->segq + ((size_t)l * ac->H + h) * S * D,
                     .pos = pos,
                     .n_rows = ns,
                     .d = D,
                     .k = ac->cache_k(ac->cache_ctx, l, gk),
                     .v = ac->cache_v(ac->cache_ctx, l, gk),
                     .Bk = kv->s[SIDE_K].B,
                     .Bv = kv->s[SIDE_V].B,
                     .scale = layer_scale(ac, l),
                     .margin = GUARD_MARGIN,
                     .scan_up = !ac->cfg.guard_envelope};
    /* the forward's own outputs of the sampled rows, already paid for: the
     * exact reference where the head ran exact, else the error at its rank */
    const int32_t *rk = ac->sego_r + ((size_t)l * ac->H + h) * S;
    int have = ns > 0 && rk[0] > 0;
    for (int32_t k = 1; k < ns; k++)
        have = have && rk[k] == rk[0];
    if (have)
        in.o_fwd = ac->sego + ((size_t)l * ac->H + h) * S * D, in.r_fwd = rk[0];
    /* the projected caches, in these bases until the refresh after the
     * guard: the ranks within their width replay at low-rank cost */
    const Side *sk = &kv->s[SIDE_K], *sv = &kv->s[SIDE_V];
    in.Pk = sk->P, in.Pv = sv->P, in.p_ld = ac->pld;
    in.p_wk = sk->w, in.p_wv = sv->w;
    in.p_rows = sk->n_proj < sv->n_proj ? sk->n_proj : sv->n_proj;
    const GuardCols *gc = &ac->gcols[(size_t)l * ac->K + gk];
    if (method_is_guarded(&ac->cfg.method) && gc->ver[SIDE_K] == sk->n_ref &&
        gc->ver[SIDE_V] == sv->n_ref) {
        in.Xk = gc->X[SIDE_K], in.Xv = gc->X[SIDE_V], in.x_ld = gc->cap;
        in.xk0 = gc->c0[SIDE_K], in.xk1 = gc->c1[SIDE_K];
        in.xv0 = gc->c0[SIDE_V], in.xv1 = gc->c1[SIDE_V];
        in.x_rows = gc->n[SIDE_K] < gc->n[SIDE_V] ? gc->n[SIDE_K] : gc->n[SIDE_V];
    }
    double fl = guard_estimate(&in, ac->grid.r, ac->grid.n, ac->cfg.eps, g, NULL);
    if (fl < 0.0)
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory in the guard");
    if (method_is_guarded(&ac->cfg.method))
        callfl_at(ac, l, h)[FLOPS_GUARD] += fl;
    return DRRL_OK;
}

typedef struct GuardTask {
    AttnCore *ac;
    int32_t l;
    int64_t seg;
    const int32_t *heads;
    DrrlStatus *st; /* (heads) */
    DrrlError *err; /* (heads) */
} GuardTask;

static void guard_task(void *arg, size_t i, int worker)
{
    (void)worker;
    GuardTask *t = arg;
    int32_t h = t->heads[i];
    t->st[i] = guard_head(t->ac, t->l, h, t->seg, t->ac->dec_guard + (size_t)h * t->ac->grid.n,
                          &t->err[i]);
}

/* The guard of every head of layer l for segment seg not yet estimated
 * (dec_gdone), from the bases in force now; heads whose sides have no basis
 * yet are left for later (the second segment's have none before its
 * refresh: its guard then finds the first basis, which saw the rows, and
 * reports no evidence). The heads are independent (each writes its own
 * estimate and ledger slot), so they run on the bound forward's threads
 * side by side: the same numbers in any split. */
static DrrlStatus guard_layer(AttnCore *ac, int32_t l, int64_t seg, DrrlError *err)
{
    if (ac->cfg.no_guard && !method_is_guarded(&ac->cfg.method)) {
        for (size_t i = 0; i < (size_t)ac->H * ac->grid.n; i++)
            ac->dec_guard[i] = NAN;
        return DRRL_OK;
    }
    int32_t *heads = malloc((size_t)ac->H * sizeof *heads);
    DrrlStatus *sts = malloc((size_t)ac->H * sizeof *sts);
    DrrlError *errs = malloc((size_t)ac->H * sizeof *errs);
    if (!heads || !sts || !errs) {
        DRRL_FREE(heads, sts, errs);
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory in the guard");
    }
    int32_t nh = 0;
    for (int32_t h = 0; h < ac->H; h++) {
        Kv *kv = kv_at(ac, l, h / ac->group);
        if (ac->dec_gdone[h] || !kv->s[SIDE_K].has_basis || !kv->s[SIDE_V].has_basis)
            continue;
        sts[nh] = DRRL_OK;
        heads[nh++] = h;
        ac->dec_gdone[h] = 1;
    }
    DrrlStatus st0 =
        method_is_guarded(&ac->cfg.method) ? guard_cols_update(ac, l, seg, heads, nh) : DRRL_OK;
    if (st0) {
        DRRL_FREE(heads, sts, errs);
        return drrl_error(err, st0, "attn_core: out of memory in the guard");
    }
    /* a short context is not worth a thread */
    int nt =
        (int64_t)seg * ac->cfg.segment * ac->D * ac->guard_rows < 65536 ? 1 : core_threads(ac);
    GuardTask task = {ac, l, seg, heads, sts, errs};
    core_parallel(ac, (size_t)nh, nt, guard_task, &task);
    DrrlStatus st = DRRL_OK;
    for (int32_t i = 0; i < nh && st == DRRL_OK; i++)
        if ((st = sts[i]) && err)
            *err = errs[i];
    DRRL_FREE(heads, sts, errs);
    return st;
}

/* Bounds, guard and safety mask of every head of layer l at segment seg.
 * The mask allows a rank when the guard's estimate (non-increasing in rank)
 * is <= eps, and always allows exact, so the allowed ranks are
 * {r >= the smallest safe rank}. The rank in force gets no exemption: it
 * stays allowed only while its own estimate passes. A missing estimate
 * (NaN: a non-finite replay) fails the test like +inf (no evidence, no low
 * rank); only where the guard was skipped as unread instrumentation
 * (no_guard, unguarded methods) is NaN allowed. fold (boundaries_folded):
 * the boundaries have not run yet, so no bounds or energies (NaN: only
 * methods that do not fold read them); the guard was skipped there, so
 * the mask allows every rank. */
static void decide_mask(AttnCore *ac, int32_t l, int fold)
{
    int32_t D = ac->D, H = ac->H, ng = ac->grid.n;
    for (int32_t h = 0; h < H; h++) {
        HeadState *hs = hs_at(ac, l, h);
        Kv *kv = kv_at(ac, l, h / ac->group);
        const Side *sk = &kv->s[SIDE_K], *sv = &kv->s[SIDE_V];
        ac->dec_prev[h] = hs->rank;
        if (!fold && h % ac->group == 0) {
            side_views(&kv->s[SIDE_K], D);
            side_views(&kv->s[SIDE_V], D);
        }
        const double *g = ac->dec_guard + (size_t)h * ng;
        for (int32_t i = 0; i < ng; i++) {
            int32_t r = ac->grid.r[i];
            ac->dec_bound[h * ng + i] = fold                        ? NAN
                                        : sk->vrel[r] > sv->vrel[r] ? sk->vrel[r]
                                                                    : sv->vrel[r];
            ac->dec_energy[h * ng + i] = fold ? NAN : sk->ven[r];
            ac->dec_energy_v[h * ng + i] = fold ? NAN : sv->ven[r];
            ac->dec_mask[h * ng + i] =
                g[i] <= ac->cfg.eps || r == D || (g[i] != g[i] && ac->cfg.no_guard);
        }
        ac->dec_value[h] = NAN;
    }
}

/* A guarded method's rank r for head h (method_is_guarded): r itself when
 * the mask allows it, else the smallest allowed grid rank above it. The
 * mask is monotone and allows exact, so that is the smallest allowed rank
 * of all, and exact when the guard allows no low rank. Counted in the
 * statistics (guard_decisions, guard_raised). */
static int32_t guard_raise(AttnCore *ac, int32_t h, int32_t r)
{
    int32_t ng = ac->grid.n, gi = method_grid_index(&ac->grid, r), gj = gi;
    while (gj < ng - 1 && !ac->dec_mask[h * ng + gj])
        gj++;
    ac->stats.guard_decisions++;
    if (ac->grid.r[gj] == r)
        return r;
    ac->stats.guard_raised++;
    return ac->grid.r[gj];
}

/* Decide ranks of every head of layer l for segment seg. */
static DrrlStatus decide(AttnCore *ac, int32_t l, int64_t seg, const float *q, size_t n,
                         DrrlError *err)
{
    int32_t D = ac->D, H = ac->H, ng = ac->grid.n;
    const Method *m = &ac->cfg.method;
    int fold = boundaries_folded(ac);
    decide_mask(ac, l, fold);
    int have_probs = 0;
    if (m->kind == METHOD_DRRL) {
        if (!ac->chooser)
            return drrl_error(err, DRRL_E_USAGE,
                              "--method %s: no policy is loaded for the drrl method", m->spec);
        double policy_flops = 0.0;
        AttnDecision dec = {l,
                            (int32_t)seg,
                            H,
                            D,
                            &ac->grid,
                            ac->dec_prev,
                            ac->dec_energy,
                            ac->dec_energy_v,
                            ac->dec_bound,
                            ac->dec_guard,
                            ac->dec_mask,
                            q,
                            n,
                            &policy_flops};
        DrrlStatus st =
            ac->chooser(ac->chooser_ctx, &dec, ac->dec_rank, ac->dec_probs, ac->dec_value, err);
        if (st)
            return st;
        for (int32_t h = 0; h < H; h++)
            callfl_at(ac, l, h)[FLOPS_POLICY] += policy_flops / H;
        have_probs = 1;
    }
    for (int32_t h = 0; h < H; h++) {
        HeadState *hs = hs_at(ac, l, h);
        const double *bd = ac->dec_bound + h * ng, *en = ac->dec_energy + h * ng,
                     *ev = ac->dec_energy_v + h * ng;
        Kv *kv = kv_at(ac, l, h / ac->group);
        int32_t r = D;
        switch (m->kind) {
        case METHOD_FIXED:
            r = method_fixed_rank(m, l);
            break;
        case METHOD_ENERGY: /* both sides' kept energy, as decide_mask took them */
            for (int32_t i = 0; i < ng; i++) {
                if (en[i] >= m->energy && ev[i] >= m->energy) {
                    r = ac->grid.r[i];
                    break;
                }
            }
            break;
        case METHOD_RANDOM: {
            int32_t lo = method_grid_index(&ac->grid, m->lo);
            int32_t hi = method_grid_index(&ac->grid, m->hi);
            if (ac->grid.r[hi] > m->hi && hi > lo)
                hi--;
            r = ac->grid.r[lo + (int32_t)(rng_splitmix64(&ac->rng) % (uint64_t)(hi - lo + 1))];
            break;
        }
        case METHOD_ORACLE:
            for (int32_t i = 0; i < ng; i++)
                if (bd[i] <= m->eps) {
                    r = ac->grid.r[i];
                    break;
                }
            break;
        case METHOD_DRRL: {
            r = ac->dec_rank[h];
            int32_t gi = method_grid_index(&ac->grid, r);
            if (ac->grid.r[gi] != r || !ac->dec_mask[h * ng + gi])
                return drrl_error(err, DRRL_E_INTERNAL,
                                  "attn_core: the policy chose rank %d for layer %d head %d, "
                                  "not an allowed grid rank",
                                  (int)r, (int)l, (int)h);
            break;
        }
        default:
            r = D;
            break;
        }
        if (method_is_guarded(m))
            r = guard_raise(ac, h, r);
        hs->rank = r;
        hs->n_masked = 0;
        for (int32_t i = 0; i < ng; i++)
            if (!ac->dec_mask[h * ng + i])
                hs->masked[hs->n_masked++] = ac->grid.r[i];
        /* folded: the head tasks take these after the boundary (advance_help) */
        if (!fold)
            head_side_stats(hs, kv, D);
        int32_t gi = method_grid_index(&ac->grid, r);
        int on_grid = ac->grid.r[gi] == r;
        /* the guard is estimated at grid ranks only (fixed:R off the grid: none) */
        hs->guard = on_grid ? ac->dec_guard[h * ng + gi] : NAN;
        hs->guard_ok = r >= D || (on_grid && ac->dec_guard[h * ng + gi] <= ac->cfg.eps) ||
                       (ac->cfg.no_guard && !method_is_guarded(m));
        hs->n_probs = have_probs ? ng : 0;
        if (have_probs)
            memcpy(hs->probs, ac->dec_probs + h * ng, (size_t)ng * sizeof *hs->probs);
        hs->value = ac->dec_value[h];
    }
    return DRRL_OK;
}

static DrrlStatus ensure_rows(AttnCore *ac, size_t n, DrrlError *err)
{
    size_t need = (size_t)ac->L * ac->H * n;
    if (need > ac->rows_cap) {
        /* rewritten by every call: huge pages (mem.h), a layer-major call's
         * rows take megabytes */
        free(ac->rows);
        ac->rows = drrl_alloc_large(need * sizeof *ac->rows);
        ac->rows_cap = ac->rows ? need : 0;
        if (!ac->rows)
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory for row statistics");
    }
    return DRRL_OK;
}

static RowStat *row_at(AttnCore *ac, int32_t l, int32_t h, size_t i)
{
    return &ac->rows[((size_t)l * ac->H + h) * ac->call_n + i];
}

static void charge_kv_row(AttnCore *ac, int32_t l, int32_t g, size_t i, FlopCat c, double n)
{
    for (int32_t j = 0; j < ac->group; j++)
        row_at(ac, l, g * ac->group + j, i)->fl[c] += n / ac->group;
}

/* Keep the queries of the segment's rows the guard will re-run at the next
 * boundary (guard_sample_rows), (L, H, S, D). */
static void guard_keep_queries(AttnCore *ac, int32_t l, size_t pos0, size_t n, const float *q)
{
    int32_t S = ac->guard_rows, T = ac->cfg.segment, D = ac->D;
    int64_t pos[GUARD_ROWS_MAX];
    int32_t ns = guard_sample_rows((int64_t)pos0 / T * T, T, S, pos);
    for (int32_t k = 0; k < ns; k++) {
        if (pos[k] < (int64_t)pos0 || pos[k] >= (int64_t)(pos0 + n))
            continue;
        const float *row = q + (size_t)(pos[k] - (int64_t)pos0) * ac->H * D;
        for (int32_t h = 0; h < ac->H; h++)
            memcpy(ac->segq + (((size_t)l * ac->H + h) * S + k) * D, row + (size_t)h * D,
                   (size_t)D * sizeof(float));
    }
}

/* The head outputs of the rows the guard will re-run, where this call
 * computed them, at rank r (head_dim: exact); the forward's own result, no
 * extra work (kept only when the forward's scale is the replay's). Called from head(), which
 * may run concurrently for other rows of the same head: each sampled row is written by the one
 * call that holds it. */
static void guard_keep_outputs(AttnCore *ac, const ForwardAttnArgs *a, int32_t r)
{
    int32_t S = ac->guard_rows, T = ac->cfg.segment, D = ac->D;
    if (a->scale != layer_scale(ac, a->layer))
        r = 0; /* not what the replay computes: the guard runs them itself */
    int64_t pos[GUARD_ROWS_MAX], p0 = (int64_t)a->pos0;
    int32_t ns = guard_sample_rows(p0 / T * T, T, S, pos);
    size_t lh = (size_t)a->layer * ac->H + a->head;
    for (int32_t k = 0; k < ns; k++) {
        if (pos[k] < p0 || pos[k] >= p0 + (int64_t)a->n)
            continue;
        memcpy(ac->sego + (lh * S + k) * D, a->out + (size_t)(pos[k] - p0) * a->out_stride,
               (size_t)D * sizeof(float));
        ac->sego_r[lh * S + k] = r;
    }
}

/* keep_queries: the call's queries appended to the kept ones (for the
 * attention pane's rows). */
static DrrlStatus keep_call_queries(AttnCore *ac, int layer, size_t pos0, size_t n,
                                    const float *q, DrrlError *err)
{
    if (pos0 + n > ac->qcap) {
        size_t cap = ac->qcap ? ac->qcap : 256;
        while (cap < pos0 + n)
            cap *= 2;
        float *nq = malloc((size_t)ac->L * ac->H * cap * ac->D * sizeof *nq);
        if (!nq)
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory (queries)");
        for (size_t lh = 0; ac->qh && lh < (size_t)ac->L * ac->H; lh++)
            memcpy(nq + lh * cap * ac->D, ac->qh + lh * ac->qcap * ac->D,
                   ac->qlen * ac->D * sizeof *nq);
        free(ac->qh);
        ac->qh = nq, ac->qcap = cap;
    }
    for (size_t i = 0; i < n; i++)
        for (int32_t h = 0; h < ac->H; h++)
            memcpy(ac->qh + (((size_t)layer * ac->H + h) * ac->qcap + pos0 + i) * ac->D,
                   q + i * (size_t)ac->H * ac->D + (size_t)h * ac->D,
                   (size_t)ac->D * sizeof(float));
    if (layer == ac->L - 1)
        ac->qlen = pos0 + n;
    return DRRL_OK;
}

/* performer and nystrom: their layer, outside the low-rank machinery. */
static DrrlStatus baseline_layer(AttnCore *ac, int layer, size_t pos0, size_t n, const float *q,
                                 DrrlError *err)
{
    DrrlStatus st;
    int64_t T = ac->cfg.segment;
    MethodKind kind = ac->cfg.method.kind;
    if (!ac->cache_k || !ac->cache_v)
        return drrl_error(err, DRRL_E_INTERNAL, "attn_core: no KV cache bound");
    size_t need = n * (size_t)ac->H * ac->D;
    if (need > ac->bl_cap) {
        float *b = realloc(ac->bl_out, need * sizeof *b);
        if (!b)
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
        ac->bl_out = b, ac->bl_cap = need;
    }
    if (kind == METHOD_PERFORMER) {
        perf_layer(ac, layer, pos0, n, q);
        return DRRL_OK;
    }
    int64_t seg = (int64_t)pos0 / T;
    if ((int64_t)(pos0 + n - 1) / T != seg)
        return drrl_error(err, DRRL_E_INTERNAL,
                          "attn_core: a forward call (positions %zu..%zu) crosses a segment "
                          "boundary",
                          pos0, pos0 + n - 1);
    if ((int64_t)pos0 % T == 0 && seg > 0 && ac->seg_done[layer] < seg) {
        if ((st = nys_boundary(ac, layer, (int64_t)pos0, err)))
            return st;
        ac->seg_done[layer] = seg;
    }
    if (seg == 0) { /* exact; just collect the segment's query sums */
        for (size_t i = 0; i < n; i++)
            for (int32_t h = 0; h < ac->H; h++) {
                Nys *y = &ac->nys[(size_t)layer * ac->H + h];
                for (int32_t j = 0; j < ac->D; j++)
                    y->qsum[j] += q[i * (size_t)ac->H * ac->D + (size_t)h * ac->D + j];
            }
    } else {
        nys_layer(ac, layer, pos0, n, q);
    }
    return DRRL_OK;
}

int attn_core_layer_major(const AttnCore *ac)
{
    MethodKind k = ac->cfg.method.kind;
    return k == METHOD_FULL || k == METHOD_FIXED || k == METHOD_ENERGY || k == METHOD_ORACLE;
}

size_t attn_core_row_bytes(const AttnCore *ac)
{
    return (size_t)ac->L * ac->H * sizeof(RowStat);
}

/* Room for the per-piece state of a call of np pieces. */
static DrrlStatus ensure_pieces(AttnCore *ac, size_t np, DrrlError *err)
{
    if (np <= ac->np_cap && (np == 1 || ac->snap_hs))
        return DRRL_OK;
    size_t LH = (size_t)ac->L * ac->H, LK = (size_t)ac->L * ac->K, G = (size_t)ac->grid.n;
    size_t cap = np > ac->np_cap ? np : ac->np_cap;
    double *fl = realloc(ac->callfl, cap * LH * FLOPS_CAT_COUNT * sizeof *fl);
    if (fl)
        ac->callfl = fl;
    double *fr = fl ? realloc(ac->callrow, cap * LH * FLOPS_CAT_COUNT * sizeof *fr) : NULL;
    if (fr)
        ac->callrow = fr;
    if (!fl || !fr)
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory for %zu segments", np);
    ac->np_cap = cap;
    DRRL_FREE(ac->snap_hs, ac->snap_masked, ac->snap_probs, ac->snap_lam, ac->snap_basis);
    ac->snap_hs = malloc(cap * LH * sizeof *ac->snap_hs);
    ac->snap_masked = malloc(cap * LH * G * sizeof *ac->snap_masked);
    ac->snap_probs = malloc(cap * LH * G * sizeof *ac->snap_probs);
    ac->snap_lam = malloc(cap * LK * 2 * (size_t)ac->D * sizeof *ac->snap_lam);
    ac->snap_basis = malloc(cap * LK * sizeof *ac->snap_basis);
    if (!ac->snap_hs || !ac->snap_masked || !ac->snap_probs || !ac->snap_lam ||
        !ac->snap_basis) {
        DRRL_FREE(ac->snap_hs, ac->snap_masked, ac->snap_probs, ac->snap_lam, ac->snap_basis);
        ac->snap_hs = NULL, ac->snap_masked = NULL, ac->snap_probs = NULL;
        ac->snap_lam = NULL, ac->snap_basis = NULL;
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory for %zu segments", np);
    }
    return DRRL_OK;
}

/* memset(p, 0, bytes) in pieces of at least 1 MiB on the bound forward's
 * threads: a layer-major call's row statistics take tens of megabytes
 * (2,048 rows x 32 heads x ~330 bytes for the default model on 16 threads),
 * which one thread clears while the others wait. */
typedef struct ClearTask {
    char *p;
    size_t bytes, piece;
} ClearTask;

static void clear_task(void *arg, size_t i, int worker)
{
    (void)worker;
    ClearTask *t = arg;
    size_t a = i * t->piece, b = a + t->piece < t->bytes ? a + t->piece : t->bytes;
    memset(t->p + a, 0, b - a);
}

static void clear_parallel(AttnCore *ac, void *p, size_t bytes)
{
    enum { MIN_PIECE = 1 << 20 };
    int nt = core_threads(ac);
    if (nt < 2 || bytes < 2 * (size_t)MIN_PIECE) {
        memset(p, 0, bytes);
        return;
    }
    size_t piece = (bytes + (size_t)nt - 1) / (size_t)nt;
    piece = piece < MIN_PIECE ? MIN_PIECE : (piece + 4095) / 4096 * 4096;
    ClearTask t = {p, bytes, piece};
    core_parallel(ac, (bytes + piece - 1) / piece, nt, clear_task, &t);
}

/* A call of n rows from pos0 starts: one piece per segment it touches
 * (more than one only for a layer-major method). */
static DrrlStatus call_setup(AttnCore *ac, size_t pos0, size_t n, DrrlError *err)
{
    DrrlStatus st;
    size_t T = (size_t)ac->cfg.segment;
    /* a call that stopped before its attention (an error) left its
     * advances set up: they run now, before this call's rows */
    for (int32_t l = 0; l < ac->L; l++)
        if ((st = advance_end(ac, l, err)))
            return st;
    size_t np = n ? (pos0 + n - 1) / T - pos0 / T + 1 : 1;
    if (np > 1 && !attn_core_layer_major(ac))
        return drrl_error(err, DRRL_E_INTERNAL,
                          "attn_core: a forward call (positions %zu..%zu) crosses a segment "
                          "boundary (segment %zu) with method %s, which decides across layers",
                          pos0, pos0 + n - 1, T, ac->cfg.method.spec);
    if ((st = ensure_rows(ac, n, err)) || (st = ensure_pieces(ac, np, err)))
        return st;
    ac->call_n = n, ac->call_pos0 = pos0, ac->call_np = np, ac->fin_pos = pos0;
    size_t LH = (size_t)ac->L * ac->H;
    clear_parallel(ac, ac->rows, LH * n * sizeof *ac->rows);
    memset(ac->callfl, 0, np * LH * FLOPS_CAT_COUNT * sizeof *ac->callfl);
    memset(ac->callrow, 0, np * LH * FLOPS_CAT_COUNT * sizeof *ac->callrow);
    for (int32_t l = 0; l < ac->L; l++)
        ac->piece[l] = 0;
    return DRRL_OK;
}

static DrrlStatus call_begin(void *ctx, size_t pos0, size_t n, DrrlError *err)
{
    AttnCore *ac = ctx;
    ac->call_hooked = 1;
    int saved = blas_serial_begin();
    DrrlStatus st = call_setup(ac, pos0, n, err);
    blas_serial_end(saved);
    return st;
}

static DrrlStatus layer_begin_piece(AttnCore *ac, int layer, size_t pos0, size_t n,
                                    const float *q, DrrlError *err);

/* What piece p's records of layer l show (finish_call), kept as layer_begin
 * left it. */
static void snapshot(AttnCore *ac, int32_t l, size_t p)
{
    size_t G = (size_t)ac->grid.n, D = (size_t)ac->D;
    for (int32_t h = 0; h < ac->H; h++) {
        size_t i = (p * ac->L + l) * ac->H + h;
        const HeadState *hs = hs_at(ac, l, h);
        ac->snap_hs[i] = *hs;
        memcpy(ac->snap_masked + i * G, hs->masked, G * sizeof *hs->masked);
        memcpy(ac->snap_probs + i * G, hs->probs, G * sizeof *hs->probs);
        ac->snap_hs[i].masked = ac->snap_masked + i * G;
        ac->snap_hs[i].probs = ac->snap_probs + i * G;
    }
    for (int32_t g = 0; g < ac->K; g++) {
        size_t i = (p * ac->L + l) * ac->K + g;
        const Kv *kv = kv_at(ac, l, g);
        memcpy(ac->snap_lam + (2 * i) * D, kv->s[SIDE_K].lam, D * sizeof(double));
        memcpy(ac->snap_lam + (2 * i + 1) * D, kv->s[SIDE_V].lam, D * sizeof(double));
        ac->snap_basis[i] = (uint8_t)kv->s[SIDE_K].has_basis;
    }
}

static DrrlStatus layer_begin_impl(void *ctx, int layer, size_t pos0, size_t n, const float *q,
                                   DrrlError *err)
{
    AttnCore *ac = ctx;
    DrrlStatus st;
    int64_t T = ac->cfg.segment;
    if (layer == 0 && !ac->call_hooked && (st = call_setup(ac, pos0, n, err)))
        return st;
    size_t piece = (size_t)pos0 / (size_t)T - ac->call_pos0 / (size_t)T;
    if (piece >= ac->call_np || pos0 + n > ac->call_pos0 + ac->call_n)
        return drrl_error(err, DRRL_E_INTERNAL,
                          "attn_core: layer %d: positions %zu..%zu outside the call", layer,
                          pos0, pos0 + n - 1);
    if (piece != ac->piece[layer]) {
        /* a later piece of a layer-major call: the earlier piece's rows
         * are projected (if its heads have not done it) and its work
         * charged to it, before this piece's boundary reads them */
        if ((st = advance_end(ac, layer, err)))
            return st;
        ac->piece[layer] = piece;
    }
    st = layer_begin_piece(ac, layer, pos0, n, q, err);
    if (st == DRRL_OK && ac->call_np > 1 && !boundaries_folded(ac))
        snapshot(ac, layer, piece);
    return st;
}

static DrrlStatus layer_begin_piece(AttnCore *ac, int layer, size_t pos0, size_t n,
                                    const float *q, DrrlError *err)
{
    DrrlStatus st;
    int64_t T = ac->cfg.segment;
    if (ac->cfg.keep_queries && (st = keep_call_queries(ac, layer, pos0, n, q, err)))
        return st;
    MethodKind kind = ac->cfg.method.kind;
    if (kind == METHOD_PERFORMER || kind == METHOD_NYSTROM)
        return baseline_layer(ac, layer, pos0, n, q, err);
    if (!method_is_lowrank(&ac->cfg.method))
        return DRRL_OK;
    if (!ac->cache_k || !ac->cache_v)
        return drrl_error(err, DRRL_E_INTERNAL, "attn_core: no KV cache bound");
    int64_t seg = (int64_t)pos0 / T;
    if ((int64_t)(pos0 + n - 1) / T != seg)
        return drrl_error(err, DRRL_E_INTERNAL,
                          "attn_core: a forward call (positions %zu..%zu) crosses a segment "
                          "boundary (segment %lld)",
                          pos0, pos0 + n - 1, (long long)T);
    if ((st = grow_proj(ac, pos0 + n, err)))
        return st;
    int new_seg = (int64_t)pos0 % T == 0;
    if (new_seg)
        memset(ac->dec_gdone, 0, (size_t)ac->H);
    if (new_seg && seg > 0 && ac->seg_done[layer] < seg) {
        /* the guard replays the completed segment on the bases that were in
         * force for it, before the refresh replaces them */
        if ((st = guard_layer(ac, layer, seg, err)))
            return st;
        if (boundaries_folded(ac)) {
            for (int32_t g = 0; g < ac->K; g++) {
                Kv *kv = kv_at(ac, layer, g);
                for (int si = 0; si < 2; si++)
                    kv->s[si].bnd_pending = 1, kv->s[si].bnd_pos = (int64_t)pos0;
                atomic_store_explicit(&kv->bnd_sides, 0, memory_order_relaxed);
            }
            ac->seg_done[layer] = seg;
        } else {
            /* with no guard to replay first (it does not bind the method and
             * nothing reads it), the boundaries of the layers after this one
             * run in the same stage: one meeting of the threads per segment
             * instead of one per layer. A layer's boundary touches only its own
             * sides and reads rows of earlier calls, so the order is free. */
            int32_t l1 = layer + 1;
            /* (the first piece of a call only: before a later piece, the later
             * layers have not run the pieces before it) */
            if (ac->cfg.no_guard && !method_is_guarded(&ac->cfg.method) &&
                ac->piece[layer] == 0)
                while (l1 < ac->L && ac->seg_done[l1] < seg)
                    l1++;
            if ((st = run_boundaries(ac, layer, l1, (int64_t)pos0, err)))
                return st;
            for (int32_t l = layer; l < l1; l++)
                ac->seg_done[l] = seg;
        }
    }
    /* decide from the state at the boundary (completed segments only), then
     * project the call's new rows */
    if (new_seg) {
        if (seg == 0) {
            for (int32_t h = 0; h < ac->H; h++) {
                HeadState *hs = hs_at(ac, layer, h);
                hs->rank = ac->D, hs->n_masked = 0, hs->energy = 1.0, hs->tail_rel = 0.0;
                hs->sin_theta = 0.0, hs->n_probs = 0, hs->value = NAN;
            }
        } else if ((st = guard_layer(ac, layer, seg, err)) ||
                   (st = decide(ac, layer, seg, q, n, err))) {
            return st;
        }
        /* the replays of the completed segment are done: its outputs go */
        memset(ac->sego_r + (size_t)layer * ac->H * ac->guard_rows, 0,
               (size_t)ac->H * ac->guard_rows * sizeof *ac->sego_r);
    }
    int32_t wbuf[64], *w_need = ac->K <= 64 ? wbuf : malloc((size_t)ac->K * sizeof *w_need);
    if (!w_need)
        return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
    for (int32_t g = 0; g < ac->K; g++) {
        /* the width the group's heads need this segment */
        w_need[g] = 0;
        for (int32_t j = 0; j < ac->group; j++) {
            int32_t r = hs_at(ac, layer, g * ac->group + j)->rank;
            if (rank_runs_lowrank(ac, r) && r > w_need[g])
                w_need[g] = r;
        }
    }
    advance_begin(ac, layer, pos0, n, w_need);
    if (w_need != wbuf)
        free(w_need);
    guard_keep_queries(ac, layer, pos0, n, q);
    return DRRL_OK;
}

/* The refresh works on D x D matrices and segment-sized blocks, far too
 * small for OpenBLAS's threads to pay (they spin and yield): run it with one
 * BLAS thread (the sides run side by side on the forward's threads),
 * restore after. */
static DrrlStatus layer_begin(void *ctx, int layer, size_t pos0, size_t n, const float *q,
                              DrrlError *err)
{
    int saved = blas_serial_begin();
    DrrlStatus st = layer_begin_impl(ctx, layer, pos0, n, q, err);
    blas_serial_end(saved);
    return st;
}

/* ---- the per-head kernel ---- */

/* Hot loops are DRRL_HOT (base/hot.h): the same bits on every variant. */

/* Causal softmax of the rows of S (n x N) in place: row i covers keys
 * 0..pos0+i, the rest is set to 0 (base/softmax.h: the exact path's row
 * softmax, the same bits whatever the thread). */
static void softmax_rows(float *S, size_t n, size_t N, size_t pos0, double *fl_softmax)
{
    for (size_t i = 0; i < n; i++) {
        size_t m = pos0 + i + 1;
        softmax_row(S + i * N, m, N);
        *fl_softmax += flops_softmax((double)m);
    }
}

/* y[i][j] = sum_d x[i][d] B[d][j] for rows i < n (stride ldx) and the first
 * r columns of B (D x D, row-major): sums in d order, vectorised over j. A
 * loop, not an sgemm: these are a few thousand flops per call, and each
 * row's result is then the same bits whatever rows come with it. */
DRRL_HOT static void rows_times_basis(const float *x, size_t ldx, size_t n, int32_t D,
                                      const float *B, int32_t r, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float *yi = y + i * (size_t)r;
        for (int32_t j = 0; j < r; j++)
            yi[j] = 0.0f;
        for (int32_t d = 0; d < D; d++) {
            const float xv = x[i * ldx + (size_t)d], *b = B + (size_t)d * D;
            for (int32_t j = 0; j < r; j++)
                yi[j] += xv * b[j];
        }
    }
}

/* out[i][d] = sum_j ab[i][j] Bt[j][d] for i < n (out row stride ldo), j < r:
 * sums in j order, vectorised over d. */
DRRL_HOT static void rows_times_basis_t(const float *ab, size_t n, int32_t r, const float *Bt,
                                        int32_t D, float *out, size_t ldo)
{
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * ldo;
        for (int32_t d = 0; d < D; d++)
            o[d] = 0.0f;
        for (int32_t j = 0; j < r; j++) {
            const float a = ab[i * (size_t)r + (size_t)j], *bt = Bt + (size_t)j * D;
            for (int32_t d = 0; d < D; d++)
                o[d] += a * bt[d];
        }
    }
}

#define ATTN_CORE_LOWRANK_ROWS 32 /* query rows per head call of a low-rank method */
#define ATTN_CORE_FINE_ROWS 16    /* ... where every head runs the rank-r kernel */

/* The rank-r kernel of one head: q B_K, scores against the projected keys,
 * softmax and the value product (fused per row up to LOWRANK_KERNEL_MAX_RANK:
 * lowrank_kernel.h), back to head_dim; ||p||_2 per row into pt2 and the query's residual norm
 * into qres when measuring. Buffers qb, ab (n x r), qres, pt2 (n) from the caller. */
static void lowrank_head(const AttnCore *ac, const ForwardAttnArgs *a, const Side *sk,
                         const Side *sv, int32_t r, float *qb, float *ab, double *qres,
                         double *pt2, double *fl)
{
    size_t n = a->n, N = a->n_keys;
    int32_t D = a->head_dim;
    float *S = a->scratch;
    /* q B_K[:, :r] */
    rows_times_basis(a->q, a->q_stride, n, D, sk->B, r, qb);
    fl[FLOPS_BASIS_PROJ] = 2.0 * n * D * r;
    /* scores (inner dimension r), softmax and the value product (output
     * width r), fused per row */
    void *lst = r <= LOWRANK_KERNEL_MAX_RANK ? malloc(lowrank_kernel_scratch(r)) : NULL;
    if (lst) {
        lowrank_kernel_rows(qb, r, sk->P, sv->P, ac->pld, n, a->pos0, a->scale, ab,
                            ac->cfg.measure ? pt2 : NULL, a->probs, a->probs_stride, N, lst);
        free(lst);
    } else { /* wider than the kernel's accumulators: products through sgemm */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)N, r, a->scale, qb,
                    r, sk->P, (int)ac->pld, 0.0f, S, (int)N);
        double fs = 0.0;
        softmax_rows(S, n, N, a->pos0, &fs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, r, (int)N, 1.0f, S, (int)N,
                    sv->P, (int)ac->pld, 0.0f, ab, r);
        for (size_t i = 0; i < n; i++) {
            double pp = 0.0;
            for (size_t t = 0; t < N; t++)
                pp += (double)S[i * N + t] * S[i * N + t];
            pt2[i] = sqrt(pp);
            if (a->probs)
                memcpy(a->probs + i * a->probs_stride, S + i * N, N * sizeof(float));
        }
    }
    fl[FLOPS_SCORES] = 2.0 * n * N * r;
    for (size_t i = 0; i < n; i++)
        fl[FLOPS_SOFTMAX] += flops_softmax((double)(a->pos0 + i + 1));
    fl[FLOPS_VALUE] = 2.0 * n * N * r;
    /* back to head_dim: (n x r)(r x D) */
    float *bt = malloc((size_t)r * D * sizeof *bt);
    if (bt) {
        for (int32_t j = 0; j < r; j++)
            for (int32_t d = 0; d < D; d++)
                bt[(size_t)j * D + d] = sv->B[(size_t)d * D + j];
        rows_times_basis_t(ab, n, r, bt, D, a->out, a->out_stride);
        free(bt);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, D, r, 1.0f, ab, r, sv->B,
                    D, 0.0f, a->out, (int)a->out_stride);
    }
    fl[FLOPS_OUT_PROJ] = 2.0 * n * r * D;
    if (ac->cfg.measure)
        for (size_t i = 0; i < n; i++) {
            double qq = 0.0, qp = 0.0;
            for (int32_t j = 0; j < D; j++)
                qq += (double)a->q[i * a->q_stride + j] * a->q[i * a->q_stride + j];
            for (int32_t j = 0; j < r; j++)
                qp += (double)qb[i * r + j] * qb[i * r + j];
            qres[i] = sqrt(qq - qp > 0.0 ? qq - qp : 0.0);
        }
}

/* Measured rows: the error against exact_out, the fidelity and, for a
 * low-rank head, the proven output bound and its check. */
static void measure_rows(AttnCore *ac, const ForwardAttnArgs *a, size_t row0, int lowrank,
                         int baseline, int32_t r, const Side *sk, const Side *sv,
                         const float *exact_out, const double *qres, const double *pt2)
{
    int32_t l = a->layer, h = a->head, D = a->head_dim;
    size_t n = a->n, N = a->n_keys;
    double kres2 = lowrank ? sk->res2[r] : 0.0;
    double vres2 = lowrank ? sv->res2[r] : 0.0;
    double vspec = sqrt(side_total(sv, D));
    for (size_t i = 0; i < n; i++) {
        RowStat *rs = row_at(ac, l, h, row0 + i);
        const float *o = exact_out + i * D, *ot = a->out + i * a->out_stride;
        double e2 = 0.0, no = 0.0, nt = 0.0, dot = 0.0;
        for (int32_t j = 0; j < D; j++) {
            double d = (double)o[j] - ot[j];
            e2 += d * d, no += (double)o[j] * o[j], nt += (double)ot[j] * ot[j];
            dot += (double)o[j] * ot[j];
        }
        rs->measured = no > 0.0 ? sqrt(e2 / no) : sqrt(e2);
        rs->err_abs = sqrt(e2);
        rs->fidelity = no > 0.0 && nt > 0.0 ? dot / sqrt(no * nt) : (e2 == 0.0 ? 1.0 : 0.0);
        rs->measured_ok = 1;
        if (lowrank) {
            double ds = qres[i] * sqrt(kres2) * a->scale;
            rs->bound_abs = bounds_output(ds, vspec, sv->rowmax, pt2[i], vres2);
            rs->bound_rel = bounds_relative(rs->bound_abs, sqrt(nt));
            double qn = 0.0;
            for (int32_t j = 0; j < D; j++)
                qn += (double)a->q[i * a->q_stride + j] * a->q[i * a->q_stride + j];
            double smax = sqrt(qn) * sk->rowmax * a->scale;
            double allow = bounds_roundoff((int64_t)N, D, sv->rowmax * (1.0 + 2.0 * smax));
            rs->violation = sqrt(e2) > rs->bound_abs + allow;
        } else if (baseline) {
            rs->bound_abs = NAN, rs->bound_rel = NAN; /* no proven bound */
            rs->violation = 0;
        } else {
            rs->bound_abs = 0.0, rs->bound_rel = 0.0;
            rs->violation = 0; /* exact: nothing to bound */
        }
    }
}

/* performer and nystrom: the rows their layer computed (baseline_layer),
 * and the weights they apply implicitly (instrumentation, not counted). */
static DrrlStatus baseline_head(AttnCore *ac, const ForwardAttnArgs *a, size_t row0,
                                DrrlError *err)
{
    int32_t l = a->layer, h = a->head, D = a->head_dim;
    size_t n = a->n, N = a->n_keys;
    DrrlStatus st = DRRL_OK;
    for (size_t i = 0; i < n; i++)
        memcpy(a->out + i * a->out_stride, ac->bl_out + ((row0 + i) * ac->H + h) * (size_t)D,
               (size_t)D * sizeof(float));
    if (a->probs)
        for (size_t i = 0; i < n && st == DRRL_OK; i++) {
            float *pr = a->probs + i * a->probs_stride;
            size_t nk = a->pos0 + i + 1;
            st = attn_core_row_probs(ac, l, h, a->q + i * a->q_stride, a->k, nk, pr, NULL, err);
            memset(pr + nk, 0, (N - nk) * sizeof(float));
        }
    return st;
}

/* Every row's rank, time, FLOPs (executed and the exact counterfactual)
 * and the head's guard state. */
static void record_rows(AttnCore *ac, const ForwardAttnArgs *a, const HeadState *hs,
                        size_t row0, int lowrank, int baseline, int32_t r, const double *fl,
                        int64_t wall_ns)
{
    int32_t l = a->layer, h = a->head, D = a->head_dim;
    size_t n = a->n;
    for (size_t i = 0; i < n; i++) {
        RowStat *rs = row_at(ac, l, h, row0 + i);
        rs->rank = lowrank ? r : baseline ? ac->cfg.method.m : D;
        rs->wall_ns = wall_ns / (int64_t)n;
        /* Counted per row over its causal keys 0..pos (see flops_savings):
         * the same count whether the row came alone or in a block, whose
         * product also runs over the masked keys after pos. */
        double nk = (double)(a->pos0 + i + 1), w = lowrank ? r : D;
        for (int c = 0; c < FLOPS_CAT_COUNT; c++)
            rs->fl[c] += fl[c] / (double)n; /* per-row products: the same per row */
        if (!baseline) {
            rs->fl[FLOPS_SCORES] = 2.0 * nk * w;
            rs->fl[FLOPS_SOFTMAX] = flops_softmax(nk);
            rs->fl[FLOPS_VALUE] = 2.0 * nk * w;
        }
        rs->fl_exact[FLOPS_SCORES - FLOPS_SCORES] = 2.0 * nk * D;
        rs->fl_exact[FLOPS_SOFTMAX - FLOPS_SCORES] = flops_softmax(nk);
        rs->fl_exact[FLOPS_VALUE - FLOPS_SCORES] = 2.0 * nk * D;
        if (!ac->cfg.measure) {
            rs->measured = NAN, rs->fidelity = NAN;
            rs->bound_abs = NAN, rs->bound_rel = NAN;
        }
        rs->tail_rel = lowrank ? hs->tail_rel : baseline ? NAN : 0.0;
        rs->lowrank = lowrank && r < D;
        rs->guard = lowrank ? hs->guard : NAN;
        rs->guard_ok = lowrank ? hs->guard_ok : 1;
    }
}

static DrrlStatus head_fn(void *ctx, const ForwardAttnArgs *a, DrrlError *err)
{
    AttnCore *ac = ctx;
    if (ac->adv_pending[a->layer]) {
        advance_help(ac, a->layer);
        advance_wait(ac, a->layer, a->kv_head);
    }
    int64_t t0 = clock_now_ns();
    int32_t l = a->layer, h = a->head, D = a->head_dim;
    size_t n = a->n, N = a->n_keys, row0 = a->pos0 - ac->call_pos0;
    HeadState *hs = hs_at(ac, l, h);
    Kv *kv = kv_at(ac, l, a->kv_head);
    Side *sk = &kv->s[SIDE_K], *sv = &kv->s[SIDE_V];
    int32_t r = hs->rank;
    int lowrank =
        method_is_lowrank(&ac->cfg.method) && rank_runs_lowrank(ac, r) && sk->has_basis;
    double fl[FLOPS_CAT_COUNT] = {0};
    /* exact counterfactual: the exact hook's products over the n x N block */
    double ex_soft = 0.0;
    for (size_t i = 0; i < n; i++)
        ex_soft += flops_softmax((double)(a->pos0 + i + 1));
    DrrlStatus st = DRRL_OK;
    float *exact_out = NULL, *qb = NULL, *ab = NULL;
    double *qres = NULL, *pt2 = NULL;
    MethodKind kind = ac->cfg.method.kind;
    int baseline = kind == METHOD_PERFORMER ||
                   (kind == METHOD_NYSTROM && a->pos0 >= (size_t)ac->cfg.segment);
    if (baseline) {
        st = baseline_head(ac, a, row0, err);
    } else if (!lowrank) {
        st = forward_attn_exact(NULL, a, err);
        if (st == DRRL_OK && method_is_lowrank(&ac->cfg.method))
            guard_keep_outputs(ac, a, D);
        fl[FLOPS_SCORES] = 2.0 * n * N * D;
        fl[FLOPS_SOFTMAX] = ex_soft;
        fl[FLOPS_VALUE] = 2.0 * n * N * D;
    } else {
        qb = malloc(n * (size_t)r * sizeof *qb);
        ab = malloc(n * (size_t)r * sizeof *ab);
        qres = malloc(n * sizeof *qres);
        pt2 = malloc(n * sizeof *pt2);
        if (!qb || !ab || !qres || !pt2) {
            st = drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory in head kernel");
            goto done;
        }
        lowrank_head(ac, a, sk, sv, r, qb, ab, qres, pt2, fl);
        guard_keep_outputs(ac, a, r);
    }
    int64_t t1 = clock_now_ns();
    if (st == DRRL_OK && ac->cfg.measure) {
        exact_out = malloc(n * (size_t)D * sizeof *exact_out);
        if (!exact_out) {
            st = drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory in head kernel");
            goto done;
        }
        if (!lowrank && !baseline) {
            for (size_t i = 0; i < n; i++)
                memcpy(exact_out + i * D, a->out + i * a->out_stride,
                       (size_t)D * sizeof(float));
        } else {
            ForwardAttnArgs b = *a;
            b.out = exact_out, b.out_stride = (size_t)D, b.probs = NULL;
            if ((st = forward_attn_exact(NULL, &b, err)))
                goto done;
        }
        measure_rows(ac, a, row0, lowrank, baseline, r, sk, sv, exact_out, qres, pt2);
    }
    record_rows(ac, a, hs, row0, lowrank, baseline, r, fl, t1 - t0);
done:
    DRRL_FREE(exact_out, qb, ab, qres, pt2);
    return st;
}

/* Rows per head call of layer l's piece at pos0 (ForwardAttn.piece_rows):
 * finer where every head of the piece runs the rank-r kernel, whose rows
 * are each computed alone (lowrank_kernel.h; the query projection and the
 * way back are per-row loops), so a row's bits do not depend on the rows
 * that come with it. Not where a head runs exact attention (the first
 * segment, a rank at head_dim) or an sgemm (ranks above the kernel's), nor
 * when measuring (the exact outputs alongside come from sgemm over the
 * call's rows): those keep ATTN_CORE_LOWRANK_ROWS, whose bits the traces
 * hold. More and smaller tasks per stage: the last of them ends sooner
 * after the others (a segment of 128 rows gives 4 x H tasks at 32 rows,
 * two for each of 16 threads of the default model). Called after the
 * piece's layer_begin, so the ranks are the piece's. */
static size_t piece_rows(void *ctx, int layer, size_t pos0, size_t n)
{
    (void)n;
    AttnCore *ac = ctx;
    if (!method_is_lowrank(&ac->cfg.method) || ac->cfg.measure ||
        pos0 < (size_t)ac->cfg.segment)
        return 0;
    for (int32_t h = 0; h < ac->H; h++) {
        int32_t r = hs_at(ac, layer, h)->rank;
        if (!rank_runs_lowrank(ac, r) || r > LOWRANK_KERNEL_MAX_RANK)
            return 0;
    }
    return ac->cfg.fine_rows > 0 ? (size_t)ac->cfg.fine_rows : ATTN_CORE_FINE_ROWS;
}

ForwardAttn attn_core_hook(AttnCore *ac)
{
    ForwardAttn fa;
    memset(&fa, 0, sizeof fa);
    fa.name = ac->cfg.method.spec;
    fa.ctx = ac;
    fa.head = head_fn;
    fa.layer_begin = layer_begin;
    fa.call_begin = call_begin;
    /* Calls of a layer-major method may span segments (forward.h): the
     * forward then runs the projections and MLP of a layer over all of
     * them, and this hook piece by piece; exact attention decides nothing,
     * so its pieces run in one stage. */
    fa.segment = (size_t)ac->cfg.segment;
    fa.pieces_together = ac->cfg.method.kind == METHOD_FULL;
    /* The rank-r kernel has no score block to amortise: small calls cost it
     * nothing and give the forward's threads H * n / 32 tasks per layer
     * instead of H (8 for the default model, idle threads at 16). Exact
     * attention keeps the forward's block (FORWARD_ATTN_BLOCK), whose
     * sgemms run faster on more rows (measured on 2 threads). */
    fa.rows_per_call = method_is_lowrank(&ac->cfg.method) ? ATTN_CORE_LOWRANK_ROWS : 0;
    fa.piece_rows = piece_rows;
    return fa;
}

/* ---- after a call: ledgers, statistics, records ---- */

static void model_flops_per_token(const ModelConfig *c, double *proj, double *mlp,
                                  double *other_layer, double *lm_head)
{
    double C = c->d_model, HD = (double)c->n_head * c->head_dim,
           KD = (double)c->n_kv_head * c->head_dim, F = c->d_ff;
    *proj = flops_linear(1, C, HD) + 2.0 * flops_linear(1, C, KD) + flops_linear(1, HD, C);
    *mlp = (c->arch == MODEL_ARCH_LLAMA ? 3.0 : 2.0) * flops_linear(1, C, F);
    *other_layer =
        2.0 * 5.0 * C + 2.0 * C; /* two norms (~5 per element) and two residual adds */
    *lm_head = flops_linear(1, C, c->vocab);
}

/* Step i of piece p (n rows; row `row` of the call) into the ledgers: the
 * layer work of one token (the same exact and executed) and every head's
 * row, the piece's boundary work on its first row and its per-row work
 * spread evenly. Each row's attention-core FLOPs go to rs->attn_exec /
 * attn_exact; *exec_tot / *exact_tot, the whole-model totals, grow by what
 * the step added. */
static void step_flops(AttnCore *ac, size_t p, size_t row, size_t i, size_t n, double *exec_tot,
                       double *exact_tot)
{
    double proj, mlp, other, lmh;
    model_flops_per_token(&ac->mc, &proj, &mlp, &other, &lmh);
    for (int32_t l = 0; l < ac->L; l++) {
        double o = other + (l == ac->L - 1 ? lmh : 0.0);
        for (FlopLedger *fl = &ac->exec; fl; fl = fl == &ac->exec ? &ac->exact : NULL) {
            flops_add(fl, l, FLOPS_LAYER, FLOPS_PROJ, proj);
            flops_add(fl, l, FLOPS_LAYER, FLOPS_MLP, mlp);
            flops_add(fl, l, FLOPS_LAYER, FLOPS_OTHER, o);
        }
        *exec_tot += proj + mlp + o, *exact_tot += proj + mlp + o;
        for (int32_t h = 0; h < ac->H; h++) {
            RowStat *rs = row_at(ac, l, h, row);
            const double *crow = callrow_p(ac, p, l, h), *cfl = callfl_p(ac, p, l, h);
            rs->attn_exec = rs->attn_exact = 0.0;
            for (int c = 0; c < FLOPS_CAT_COUNT; c++) {
                double fe = rs->fl[c] + crow[c] / (double)n + (i == 0 ? cfl[c] : 0.0);
                double fx = flops_exact_row(rs, c);
                /* most categories are empty on most rows: adding +0.0 to a
                 * count (never -0.0) changes no bit, so skip it (this loop
                 * runs rows x layers x heads x categories times, on the
                 * calling thread while the pool waits) */
                if (fe == 0.0 && fx == 0.0)
                    continue;
                flops_add(&ac->exec, l, h, (FlopCat)c, fe);
                flops_add(&ac->exact, l, h, (FlopCat)c, fx);
                *exec_tot += fe, *exact_tot += fx;
                if (flops_cat_is_attn((FlopCat)c))
                    rs->attn_exec += fe, rs->attn_exact += fx;
            }
            ac->stats.attn_flops_executed += rs->attn_exec;
            ac->stats.attn_flops_exact += rs->attn_exact;
        }
    }
}

/* The guard and bound statistics of one measured low-rank row. */
static void guard_stats_add(AttnCore *ac, const RowStat *rs)
{
    AttnCoreStats *st = &ac->stats;
    st->lowrank_rows++;
    if (rs->guard_ok) {
        st->guarded_rows++;
        st->guard_exceeded += rs->measured > ac->cfg.eps;
    } else {
        st->forced_rows++;
    }
    st->bound_vacuous += !(rs->bound_rel < 1.0);
    if (rs->err_abs > 0.0) {
        if (ac->n_ratios == ac->ratios_cap) {
            size_t cap = ac->ratios_cap ? 2 * ac->ratios_cap : 4096;
            double *r = realloc(ac->ratios, cap * sizeof *r);
            if (!r)
                return; /* the median then covers the rows kept so far */
            ac->ratios = r, ac->ratios_cap = cap;
        }
        ac->ratios[ac->n_ratios++] = rs->bound_abs / rs->err_abs;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double attn_core_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double attn_core_bound_ratio_median(const AttnCore *ac)
{
    size_t n = ac->n_ratios;
    double *c = n ? malloc(n * sizeof *c) : NULL;
    if (!c)
        return NAN;
    memcpy(c, ac->ratios, n * sizeof *c);
    double m = attn_core_median(c, n);
    free(c);
    return m;
}

const double *attn_core_bound_ratios(const AttnCore *ac, size_t *n)
{
    *n = ac->n_ratios;
    return ac->ratios;
}

DrrlStatus attn_core_finish_call(AttnCore *ac, size_t pos0, size_t n, const char *const *tokens,
                                 TraceSink *sinks, int n_sinks, DrrlError *err)
{
    size_t T = (size_t)ac->cfg.segment, end = ac->call_pos0 + ac->call_n;
    if (pos0 != ac->fin_pos || n == 0 || pos0 + n > end || (pos0 + n != end && (pos0 + n) % T))
        return drrl_error(err, DRRL_E_INTERNAL,
                          "attn_core: finish_call(%zu, %zu) does not "
                          "continue the last forward call (%zu, %zu; emitted up to %zu) by "
                          "whole segments",
                          pos0, n, ac->call_pos0, ac->call_n, ac->fin_pos);
    if (pos0 == ac->call_pos0)
        for (int32_t l = 0; l < ac->L; l++) {
            DrrlStatus st = advance_end(ac, l, err);
            if (st)
                return st;
        }
    TraceRecord rec;
    for (size_t i = 0; i < n; i++) {
        /* the piece of position pos0 + i: rows [p0, p1) of the call */
        size_t pos = pos0 + i, row = pos - ac->call_pos0;
        size_t p = pos / T - ac->call_pos0 / T;
        size_t p0 = pos / T * T > ac->call_pos0 ? pos / T * T : ac->call_pos0;
        size_t p1 = (pos / T + 1) * T < end ? (pos / T + 1) * T : end;
        step_flops(ac, p, row, pos - p0, p1 - p0, &ac->stats.flops_executed,
                   &ac->stats.flops_exact);
        /* whole-model savings over tokens 0..pos0 + i, the same on every row of the step */
        double saved = flops_savings(ac->stats.flops_exact, ac->stats.flops_executed);
        for (int32_t l = 0; l < ac->L; l++)
            for (int32_t h = 0; h < ac->H; h++) {
                RowStat *rs = row_at(ac, l, h, row);
                /* the state the records show: as the piece's layer_begin
                 * left it (kept when later pieces ran since) */
                int snap = ac->call_np > 1;
                size_t sg = (p * ac->L + l) * ac->K + h / ac->group;
                const HeadState *hs =
                    snap ? &ac->snap_hs[(p * ac->L + l) * ac->H + h] : hs_at(ac, l, h);
                const Kv *kv = kv_at(ac, l, h / ac->group);
                if (rs->measured_ok) {
                    ac->stats.rows++;
                    ac->stats.fidelity_sum += rs->fidelity;
                    ac->stats.violations += rs->violation;
                    if (rs->lowrank)
                        guard_stats_add(ac, rs);
                }
                ac->stats.attn_wall_s += rs->wall_ns * 1e-9;
                if (n_sinks <= 0)
                    continue;
                float sig[4096], sigv[4096];
                const double *lk = snap ? ac->snap_lam + 2 * sg * ac->D : kv->s[SIDE_K].lam;
                const double *lv = snap ? lk + ac->D : kv->s[SIDE_V].lam;
                int nsig = (snap ? ac->snap_basis[sg] : kv->s[SIDE_K].has_basis) ? ac->D : 0;
                for (int32_t j = 0; j < nsig; j++) {
                    sig[j] = (float)sqrt(lk[j]);
                    sigv[j] = (float)sqrt(lv[j]);
                }
                memset(&rec, 0, sizeof rec);
                rec.step = (int64_t)(pos0 + i);
                rec.token_index = (int64_t)(pos0 + i);
                rec.token = tokens && tokens[i] ? tokens[i] : "";
                rec.segment = (int32_t)((pos0 + i) / (size_t)ac->cfg.segment);
                rec.layer = l, rec.head = h;
                rec.method = ac->cfg.method.spec;
                rec.rank = rs->rank;
                rec.head_dim = ac->D;
                rec.energy_kept = rs->rank == ac->D ? 1.0 : hs->energy;
                rec.n_sigma = nsig, rec.sigma = sig;
                rec.n_sigma_v = nsig, rec.sigma_v = sigv;
                rec.tail_bound = rs->tail_rel;
                rec.sin_theta_bound = rs->rank == ac->D ? 0.0 : hs->sin_theta;
                rec.output_bound = rs->bound_rel;
                rec.guard_estimate = rs->guard;
                rec.threshold = ac->cfg.eps;
                rec.n_masked = hs->n_masked;
                rec.masked = hs->masked;
                rec.measured_error = rs->measured;
                rec.fidelity = rs->fidelity;
                rec.flops_exact = rs->attn_exact;
                rec.flops_executed = rs->attn_exec;
                rec.savings_cum = saved;
                rec.n_policy = hs->n_probs;
                rec.policy_probs = hs->probs;
                rec.value = hs->value;
                rec.reward = NAN;
                rec.wall_ns = rs->wall_ns;
                for (int k = 0; k < n_sinks; k++) {
                    DrrlStatus st = sinks[k].put(&sinks[k], &rec, err);
                    if (st)
                        return st;
                }
            }
    }
    ac->stats.tokens += (int64_t)n;
    ac->fin_pos = pos0 + n;
    return DRRL_OK;
}

DrrlStatus attn_core_row_probs(AttnCore *ac, int32_t layer, int32_t head, const float *q,
                               const float *k, size_t n_keys, float *probs, float *exact_probs,
                               DrrlError *err)
{
    if (layer < 0 || layer >= ac->L || head < 0 || head >= ac->H || n_keys < 1)
        return drrl_error(err, DRRL_E_USAGE, "attn_core: no head %d of layer %d", (int)head,
                          (int)layer);
    int32_t D = ac->D;
    float scale = layer_scale(ac, layer);
    Side *sk = &kv_at(ac, layer, head / ac->group)->s[SIDE_K];
    int32_t r = hs_at(ac, layer, head)->rank;
    int lowrank = method_is_lowrank(&ac->cfg.method) && r < D && sk->has_basis &&
                  (size_t)sk->n_proj >= n_keys;
    for (int pass = 0; pass < 2; pass++) {
        float *out = pass == 0 ? probs : exact_probs;
        if (!out)
            continue;
        float qb[4096];
        int use_lr = pass == 0 && lowrank;
        for (size_t t = 0; t < n_keys; t++) {
            double s = 0.0;
            if (use_lr) {
                if (t == 0)
                    for (int32_t j = 0; j < r; j++) {
                        double a = 0.0;
                        for (int32_t i = 0; i < D; i++)
                            a += (double)q[i] * sk->B[(size_t)i * D + j];
                        qb[j] = (float)a;
                    }
                for (int32_t j = 0; j < r; j++)
                    s += (double)qb[j] * sk->P[(size_t)j * ac->pld + t];
            } else {
                for (int32_t i = 0; i < D; i++)
                    s += (double)q[i] * k[t * D + i];
            }
            out[t] = (float)(s * scale);
        }
        double dummy = 0.0;
        softmax_rows(out, 1, n_keys, n_keys - 1, &dummy);
    }
    if (probs && ac->perf) {
        /* Performer: the weights its prefix sums apply implicitly,
         * phi(q).phi(k_j) / sum_j' phi(q).phi(k_j') (one shift for all). */
        const Perf *p = &ac->perf[(size_t)layer * ac->K + head / ac->group];
        int32_t M = ac->cfg.method.m;
        double *lq = malloc((size_t)M * sizeof *lq), *lk = malloc((size_t)M * sizeof *lk);
        double *w = malloc(n_keys * sizeof *w);
        if (!lq || !lk || !w) {
            free(lq), free(lk), free(w);
            return drrl_error(err, DRRL_E_NOMEM, "attn_core: out of memory");
        }
        perf_logits(p->W, M, D, q, scale, lq);
        double mx = -INFINITY;
        for (size_t t = 0; t < n_keys; t++) {
            perf_logits(p->W, M, D, k + t * D, scale, lk);
            double m2 = -INFINITY;
            for (int32_t i = 0; i < M; i++)
                m2 = lq[i] + lk[i] > m2 ? lq[i] + lk[i] : m2;
            w[t] = m2; /* log of the largest term, for the shift below */
            mx = m2 > mx ? m2 : mx;
        }
        double z = 0.0;
        for (size_t t = 0; t < n_keys; t++) {
            perf_logits(p->W, M, D, k + t * D, scale, lk);
            double a = 0.0;
            for (int32_t i = 0; i < M; i++)
                a += exp(lq[i] + lk[i] - mx);
            w[t] = a;
            z += a;
        }
        for (size_t t = 0; t < n_keys; t++)
            probs[t] = z > 0.0 ? (float)(w[t] / z) : 0.0f;
        free(lq), free(lk), free(w);
    } else if (probs && ac->nys) {
        /* Nystrom after its first segment: sum_i w_i e^{Lq_i.k_j s - c_i} / z_i
         * with w = softmax(q Lk^T s) pinv(A), from the landmarks in force now
         * (z_i counts every key seen so far: for an older row the weights
         * need not sum to 1). */
        const Nys *y = &ac->nys[(size_t)layer * ac->H + head];
        int32_t m = y->m_used, M = ac->cfg.method.m;
        if (m > 0) {
            double wv[METHOD_NYSTROM_MAX];
            nys_weights(y, q, D, M, scale, wv);
            for (size_t t = 0; t < n_keys; t++) {
                double acc = 0.0;
                for (int32_t a = 0; a < m; a++) {
                    double d = 0.0;
                    for (int32_t j = 0; j < D; j++)
                        d += (double)y->Lq[(size_t)a * D + j] * k[t * D + j];
                    acc += wv[a] * exp(d * scale - y->c[a]) / y->z[a];
                }
                probs[t] = (float)acc;
            }
        }
    }
    return DRRL_OK;
}

const float *attn_core_query(const AttnCore *ac, int32_t layer, int32_t head, size_t pos)
{
    if (!ac->qh || layer < 0 || layer >= ac->L || head < 0 || head >= ac->H || pos >= ac->qlen)
        return NULL;
    return ac->qh + (((size_t)layer * ac->H + head) * ac->qcap + pos) * ac->D;
}

DrrlStatus attn_core_reserve(AttnCore *ac, size_t n, DrrlError *err)
{
    if (!method_is_lowrank(&ac->cfg.method) || n <= ac->pcap)
        return DRRL_OK;
    size_t cap = ac->pcap ? ac->pcap : 256;
    while (cap < n)
        cap *= 2;
    return grow_proj(ac, cap, err);
}
