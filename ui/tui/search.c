/* search.c: `/` over the text (see app.h, app_search). The tokens' texts are
 * joined into one string, so a word split over several tokens (every word,
 * with a byte-level model) is found; "#ID" finds a token id instead. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/app.h"

const char *app_token_text(const App *app, int64_t s)
{
    TraceRecord r;
    if (app_read(app, s, 0, 0, &r))
        return r.token ? r.token : ""; /* interned in the store: stays valid */
    if (app->src && app->src->token_text && s >= 0 && s < app_n_tokens(app))
        return app->src->token_text(app->src->ctx, s);
    return NULL;
}

/* The query with \n, \t, \r and \\ unescaped (the strip shows them so). */
static size_t unescape(const char *q, char *out, size_t cap)
{
    size_t k = 0;
    for (; *q && k + 1 < cap; q++) {
        if (q[0] == '\\' && (q[1] == 'n' || q[1] == 't' || q[1] == 'r' || q[1] == '\\')) {
            q++;
            out[k++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q == 'r' ? '\r' : '\\';
        } else {
            out[k++] = *q;
        }
    }
    out[k] = 0;
    return k;
}

/* The text of tokens 0..n-1 joined (lower-case ASCII), with off[s] the start
 * of token s and off[n] the length. NULL when out of memory. */
static char *join(const App *app, int64_t n, size_t **off_out)
{
    size_t *off = malloc(((size_t)n + 1) * sizeof *off), len = 0, cap = (size_t)n * 2 + 16;
    char *text = malloc(cap);
    if (!off || !text) {
        free(off), free(text);
        return NULL;
    }
    for (int64_t s = 0; s < n; s++) {
        const char *t = app_token_text(app, s);
        size_t k = t ? strlen(t) : 0;
        off[s] = len;
        if (len + k + 1 > cap) {
            while (len + k + 1 > cap)
                cap *= 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                free(off), free(text);
                return NULL;
            }
            text = nt;
        }
        for (size_t i = 0; i < k; i++)
            text[len++] = (char)tolower((unsigned char)t[i]);
    }
    off[n] = len;
    text[len] = 0;
    *off_out = off;
    return text;
}

/* The token holding byte p of the joined text. */
static int64_t token_of(const size_t *off, int64_t n, size_t p)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (off[mid] <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static bool match_at(const char *text, size_t p, const char *q, size_t m)
{
    for (size_t i = 0; i < m; i++)
        if (text[p + i] != (char)tolower((unsigned char)q[i]))
            return false;
    return true;
}

/* First match starting at a token after (dir > 0) or before (dir < 0) the
 * cursor, wrapping once; *wrapped says whether it wrapped. -1: none. */
static int64_t find_text(const App *app, const char *text, const size_t *off, int64_t n,
                         const char *q, size_t m, int dir, bool *wrapped, int64_t *last)
{
    size_t len = off[n];
    if (m == 0 || m > len)
        return -1;
    size_t np = len - m + 1; /* candidate starts 0..np-1 */
    int64_t cur = app->step < n ? app->step : n - 1;
    size_t from = dir > 0 ? off[cur + 1 <= n ? cur + 1 : n] : off[cur];
    int64_t self = -1; /* a match at the cursor only: found again, wrapped */
    for (size_t k = 0; k < np; k++) {
        size_t p = dir > 0 ? (from + k) % np : (from + 2 * np - 1 - k) % np;
        if (match_at(text, p, q, m)) {
            int64_t s = token_of(off, n, p);
            if (s == cur) {
                if (self < 0)
                    self = s, *last = token_of(off, n, p + m - 1);
                continue;
            }
            *wrapped = dir > 0 ? s < cur : s > cur;
            *last = token_of(off, n, p + m - 1);
            return s;
        }
    }
    *wrapped = self >= 0;
    return self;
}

static int64_t find_id(const App *app, int64_t n, long id, int dir, bool *wrapped)
{
    for (int64_t k = 1; k <= n; k++) {
        int64_t s = ((app->step + dir * k) % n + n) % n;
        if (app->src->token_id(app->src->ctx, s) == id) {
            *wrapped = dir > 0 ? s <= app->step : s >= app->step;
            return s;
        }
    }
    return -1;
}

int app_search(App *app, int dir)
{
    if (!app->search[0]) {
        app_message(app, true, "no search yet: start one with /");
        return APP_REDRAW_ALL;
    }
    int64_t n = app_n_tokens(app), s = -1, last = -1;
    bool wrapped = false;
    const char *q = app->search;
    char *end = NULL;
    long id = q[0] == '#' && isdigit((unsigned char)q[1]) ? strtol(q + 1, &end, 10) : -1;
    if (n <= 0) {
        app_message(app, true, "no tokens to search");
        return APP_REDRAW_ALL;
    }
    if (end && !*end) {
        if (!app->src || !app->src->token_id) {
            app_message(app, true, "%s: a trace keeps token texts, not ids: search the text",
                        q);
            return APP_REDRAW_ALL;
        }
        s = last = find_id(app, n, id, dir, &wrapped);
    } else {
        char uq[sizeof app->search];
        size_t m = unescape(q, uq, sizeof uq);
        size_t *off = NULL;
        char *text = join(app, n, &off);
        if (!text) {
            app_message(app, true, "out of memory");
            return APP_REDRAW_ALL;
        }
        s = find_text(app, text, off, n, uq, m, dir, &wrapped, &last);
        free(text), free(off);
    }
    if (s < 0) {
        app->match_first = app->match_last = -1;
        app_message(app, true, "'%s' not found in the %lld tokens of the text", q,
                    (long long)n);
        return APP_REDRAW_ALL;
    }
    app->match_first = s, app->match_last = last;
    int rc = app_go_to(app, s);
    if (app->step != s && !app_busy(app)) /* the jump failed: its message stays */
        return rc;
    char span[64] = "";
    if (last > s)
        snprintf(span, sizeof span, " (tokens %lld-%lld)", (long long)s + 1,
                 (long long)last + 1);
    app_message(app, false, "%s'%s' at token %lld%s", wrapped ? "search wrapped: " : "", q,
                (long long)s + 1, span);
    return rc;
}
