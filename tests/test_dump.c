/* `drrl dump` end to end: the written file matches transformers' reference
 * tensors for fixtures of both families (runs the built binary, $DRRL). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"

#define TOL_REF 1e-4 /* max abs difference / max abs reference value */
#define TOL_LOSS 1e-4

static double rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, mv = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md))
            md = d;
        if (fabs(b[i]) > mv)
            mv = fabs(b[i]);
    }
    return md / mv;
}

static float *as_f32(const Safetensors *st, const char *name, size_t *n)
{
    const SafetensorsTensor *t = safetensors_find(st, name);
    cr_assert_not_null(t, "%s lacks %s", st->path, name);
    float *v = malloc(t->numel * sizeof *v);
    cr_assert_eq(safetensors_to_f32(st, t, v, NULL), DRRL_OK);
    *n = t->numel;
    return v;
}

static void check(const char *fixture)
{
    const char *drrl = getenv("DRRL");
    if (!drrl)
        cr_skip_test("DRRL is not set (run under make check)");
    char dir[512], path[600], ids_path[] = "/tmp/drrl-dump-ids-XXXXXX", out[600];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES_DIR, fixture);
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    Safetensors *ref;
    cr_assert_eq(safetensors_load(path, &ref, NULL), DRRL_OK);
    const SafetensorsTensor *t = safetensors_find(ref, "input_ids");
    int32_t *ids = malloc(t->numel * sizeof *ids);
    cr_assert_eq(safetensors_to_i32(ref, t, ids, NULL), DRRL_OK);
    int fd = mkstemp(ids_path);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < t->numel; i++)
        fprintf(f, "%d%s", ids[i], i % 10 == 9 ? "\n" : " ");
    fclose(f);
    snprintf(out, sizeof out, "%s.safetensors", ids_path);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' dump --model '%s' --ids-file '%s' --out '%s' >/dev/null",
             drrl, dir, ids_path, out);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);

    Safetensors *got;
    cr_assert_eq(safetensors_load(out, &got, NULL), DRRL_OK);
    int32_t *gids = malloc(t->numel * sizeof *gids);
    const SafetensorsTensor *gt = safetensors_find(got, "input_ids");
    cr_assert_not_null(gt);
    cr_assert_eq(gt->dtype, SAFETENSORS_I32);
    cr_assert_eq(gt->numel, t->numel);
    safetensors_to_i32(got, gt, gids, NULL);
    cr_assert_eq(memcmp(gids, ids, t->numel * sizeof *ids), 0);
    size_t compared = 0;
    for (size_t i = 0; i < ref->n_tensors; i++) {
        const char *name = ref->tensors[i].name;
        if (strcmp(name, "input_ids") == 0)
            continue;
        size_t na, nb;
        float *a = as_f32(got, name, &na), *b = as_f32(ref, name, &nb);
        cr_assert_eq(na, nb, "%s: %zu elements, reference %zu", name, na, nb);
        const SafetensorsTensor *ta = safetensors_find(got, name), *tb = &ref->tensors[i];
        cr_assert_eq(ta->ndim, tb->ndim);
        cr_assert_eq(memcmp(ta->shape, tb->shape, sizeof ta->shape), 0, "%s: shape", name);
        double d = rel_diff(a, b, na);
        cr_expect(d <= TOL_REF, "%s %s: differs by %g", fixture, name, d);
        free(a);
        free(b);
        compared++;
    }
    cr_assert_eq(compared + 1, got->n_tensors); /* nothing extra */
    snprintf(path, sizeof path, "%s/reference.json", dir);
    FILE *j = fopen(path, "r");
    char buf[1024] = {0};
    cr_assert(fread(buf, 1, sizeof buf - 1, j) > 0);
    fclose(j);
    double want = strtod(strstr(buf, "\"loss\":") + 7, NULL);
    double loss = strtod(safetensors_metadata(got, "loss"), NULL);
    cr_expect(fabs(loss - want) <= TOL_LOSS, "%s: loss %.7f, reference %.7f", fixture, loss,
              want);
    cr_assert_str_eq(safetensors_metadata(got, "method"), "exact");
    safetensors_free(got);
    safetensors_free(ref);
    free(ids);
    free(gids);
    unlink(ids_path);
    unlink(out);
}

Test(dump, gpt2_3l4h_matches_reference)
{
    check("gpt2-3l4h");
}
Test(dump, llama_gqa_bf16_matches_reference)
{
    check("llama-gqa-bf16");
}
Test(dump, llama_sharded_f16_matches_reference)
{
    check("llama-sharded-f16");
}
