/* softmax.c: see softmax.h. */
#include "base/softmax.h"

#include "base/fastexp.h"
#include "base/hot.h"

static inline __attribute__((always_inline)) float row_max(const float *row, size_t n)
{
    float m8[8];
    for (int u = 0; u < 8; u++)
        m8[u] = row[0];
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++)
            m8[u] = row[j + u] > m8[u] ? row[j + u] : m8[u];
    float mx = m8[0];
    for (int u = 1; u < 8; u++)
        mx = m8[u] > mx ? m8[u] : mx;
    for (; j < n; j++)
        mx = row[j] > mx ? row[j] : mx;
    return mx;
}

DRRL_HOT float softmax_row_max(const float *row, size_t n)
{
    return row_max(row, n);
}

DRRL_HOT void softmax_row(float *row, size_t lim, size_t nk)
{
    float mx = row_max(row, lim);
    size_t j;
    for (j = 0; j < lim; j++)
        row[j] = fastexp_nonpos(row[j] - mx);
    double s8[8] = {0};
    for (j = 0; j + 8 <= lim; j += 8)
        for (int u = 0; u < 8; u++)
            s8[u] += row[j + u];
    double sum = 0;
    for (int u = 0; u < 8; u++)
        sum += s8[u];
    for (; j < lim; j++)
        sum += row[j];
    float inv = (float)(1.0 / sum);
    for (j = 0; j < lim; j++)
        row[j] *= inv;
    for (j = lim; j < nk; j++)
        row[j] = 0.0f;
}
