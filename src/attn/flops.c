#include "attn/flops.h"

#include <stdlib.h>
#include <string.h>

static const char *const cat_names[FLOPS_CAT_COUNT] = {
    "projections", "gram",     "eigensolve", "rotation", "basis_proj", "scores", "softmax",
    "value",       "out_proj", "mlp",        "policy",   "other",      "guard",
};

const char *flops_cat_name(FlopCat c)
{
    return (unsigned)c < FLOPS_CAT_COUNT ? cat_names[c] : "?";
}

int flops_cat_is_attn(FlopCat c)
{
    return (c >= FLOPS_GRAM && c <= FLOPS_OUT_PROJ) || c == FLOPS_GUARD;
}

DrrlStatus flops_init(FlopLedger *l, int32_t n_layer, int32_t n_head, DrrlError *err)
{
    memset(l, 0, sizeof *l);
    size_t n;
    if (n_layer < 1 || n_head < 1 || drrl_size_mul((size_t)n_layer, (size_t)n_head + 1, &n) ||
        drrl_size_mul(n, FLOPS_CAT_COUNT, &n))
        return drrl_error(err, DRRL_E_USAGE, "flops: bad ledger shape %d x %d", (int)n_layer,
                          (int)n_head);
    l->c = calloc(n, sizeof *l->c);
    if (!l->c)
        return drrl_error(err, DRRL_E_NOMEM, "flops: out of memory");
    l->n_layer = n_layer;
    l->n_head = n_head;
    return DRRL_OK;
}

void flops_done(FlopLedger *l)
{
    if (!l)
        return;
    free(l->c);
    l->c = NULL;
}

void flops_clear(FlopLedger *l)
{
    if (l->c)
        memset(l->c, 0,
               (size_t)l->n_layer * ((size_t)l->n_head + 1) * FLOPS_CAT_COUNT * sizeof *l->c);
}

static size_t idx(const FlopLedger *l, int32_t layer, int32_t hslot, int c)
{
    return ((size_t)layer * ((size_t)l->n_head + 1) + (size_t)hslot) * FLOPS_CAT_COUNT +
           (size_t)c;
}

void flops_add(FlopLedger *l, int32_t layer, int32_t head, FlopCat c, double n)
{
    if (!l || !l->c || layer < 0 || layer >= l->n_layer || (unsigned)c >= FLOPS_CAT_COUNT)
        return;
    int32_t h = head == FLOPS_LAYER ? l->n_head : head;
    if (h < 0 || h > l->n_head)
        return;
    l->c[idx(l, layer, h, c)] += n;
}

double flops_get(const FlopLedger *l, int32_t layer, int32_t head, FlopCat c)
{
    if (!l || !l->c)
        return 0.0;
    double s = 0.0;
    for (int32_t i = 0; i < l->n_layer; i++) {
        if (layer >= 0 && i != layer)
            continue;
        for (int32_t h = 0; h <= l->n_head; h++) {
            if (head >= 0 && h != head)
                continue;
            for (int k = 0; k < FLOPS_CAT_COUNT; k++)
                if (c == FLOPS_CAT_COUNT || (int)c == k)
                    s += l->c[idx(l, i, h, k)];
        }
    }
    return s;
}

double flops_total(const FlopLedger *l)
{
    return flops_get(l, -1, -1, FLOPS_CAT_COUNT);
}

double flops_attn(const FlopLedger *l)
{
    double s = 0.0;
    for (int k = 0; k < FLOPS_CAT_COUNT; k++)
        if (flops_cat_is_attn((FlopCat)k))
            s += flops_get(l, -1, -1, (FlopCat)k);
    return s;
}

double flops_head_attn(const FlopLedger *l, int32_t layer, int32_t head)
{
    double s = 0.0;
    for (int k = 0; k < FLOPS_CAT_COUNT; k++)
        if (flops_cat_is_attn((FlopCat)k))
            s += flops_get(l, layer, head, (FlopCat)k);
    return s;
}
