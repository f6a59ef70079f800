/* tokenizer_text.c: UTF-8, Unicode classes, NFC and pre-tokenizer regexes.
 *
 * Unicode data comes from utf8proc (Debian's libutf8proc, the library Julia
 * uses for its strings): general categories for \p{L} (Lu Ll Lt Lm Lo) and
 * \p{N} (Nd Nl No), and NFC (utf8proc_map with STABLE | COMPOSE). Whitespace
 * is the category Zs plus a fixed list of code points, exactly:
 *   Unicode White_Space = Zs + U+0009..U+000D, U+0085, U+2028, U+2029
 *   JavaScript \s       = Zs + U+0009..U+000D, U+2028, U+2029, U+FEFF
 * (PropList.txt; ECMA-262 WhiteSpace and LineTerminator).
 *
 * The regexes are matched by hand, alternative by alternative, with the
 * backtracking the regex engine would do worked out in the comments; the
 * tests compare the ids they lead to with the reference implementations'.
 */
#include "model/tokenizer_text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/strbuf.h"

size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return need;
}

enum CharClass { CC_LETTER, CC_NUMBER, CC_SPACE, CC_OTHER };

static enum CharClass char_class(uint32_t cp, TokSpace sp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return CC_LETTER;
        if (cp >= '0' && cp <= '9')
            return CC_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
            return CC_SPACE;
        return CC_OTHER;
    }
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return CC_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CC_NUMBER;
    case UTF8PROC_CATEGORY_ZS:
        return CC_SPACE;
    default:
        break;
    }
    if (cp == 0x2028 || cp == 0x2029)
        return CC_SPACE;
    if (cp == (sp == TOK_SPACE_JS ? 0xFEFFu : 0x85u))
        return CC_SPACE;
    return CC_OTHER;
}

/* Class and length of the character at s[i]; an invalid byte is CC_OTHER of
 * length 1 with *cp = 0xFFFFFFFF. */
static enum CharClass class_at(const unsigned char *s, size_t n, size_t i, TokSpace sp,
                               size_t *clen, uint32_t *cp)
{
    size_t k = tok_utf8_decode(s + i, n - i, cp);
    if (k == 0) {
        *clen = 1;
        *cp = 0xFFFFFFFFu;
        return CC_OTHER;
    }
    *clen = k;
    return char_class(*cp, sp);
}

/* End of the run of characters of class c that starts at s[i]. */
static size_t run_end(const unsigned char *s, size_t n, size_t i, enum CharClass c, TokSpace sp)
{
    while (i < n) {
        size_t k;
        uint32_t cp;
        if (class_at(s, n, i, sp, &k, &cp) != c)
            break;
        i += k;
    }
    return i;
}

/* '\s+(?!\S)|\s+' at a space run [i, e) whose last character starts at
 * last: the run less its last character when a non-space follows and the
 * run is longer than one character (backtracking one character satisfies
 * the lookahead), else the whole run. */
static size_t space_run_len(size_t n, size_t i, size_t e, size_t last)
{
    if (e < n && last > i)
        return last - i;
    return e - i;
}

size_t tok_pretoken_gpt2(const unsigned char *s, size_t n, size_t i)
{
    size_t clen;
    uint32_t cp;
    enum CharClass c = class_at(s, n, i, TOK_SPACE_JS, &clen, &cp);
    /* 's|'t|'re|'ve|'m|'ll|'d (lower case only, as in GPT-2) */
    if (cp == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    /* ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+' */
    size_t j = i;
    enum CharClass c2 = c;
    size_t c2len = clen;
    if (cp == ' ' && i + 1 < n) {
        j = i + 1;
        c2 = class_at(s, n, j, TOK_SPACE_JS, &c2len, &cp);
    }
    if (c2 != CC_SPACE)
        return run_end(s, n, j + c2len, c2, TOK_SPACE_JS) - i;
    size_t e = i, last = i;
    while (e < n) {
        size_t k;
        if (class_at(s, n, e, TOK_SPACE_JS, &k, &cp) != CC_SPACE)
            break;
        last = e;
        e += k;
    }
    return space_run_len(n, i, e, last);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) with ASCII case folding: the length, or 0. */
static size_t contraction_ci(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] != '\'' || i + 1 >= n)
        return 0;
    /* x | 0x20 is a lower-case ASCII letter only for that letter's cases. */
    unsigned a = s[i + 1] | 0x20u, b = i + 2 < n ? s[i + 2] | 0x20u : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

size_t tok_pretoken_llama3(const unsigned char *s, size_t n, size_t i, int max_digits)
{
    const TokSpace sp = TOK_SPACE_UNICODE;
    size_t clen, k;
    uint32_t cp, cp2;
    enum CharClass c = class_at(s, n, i, sp, &clen, &cp);
    size_t m = contraction_ci(s, n, i);
    if (m)
        return m;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : a letter run, or one character that is
     * neither CR, LF, letter nor number followed by a letter run (when no
     * letter follows, the optional part backtracks to empty and \p{L}+
     * fails on that character). */
    if (c == CC_LETTER)
        return run_end(s, n, i + clen, CC_LETTER, sp) - i;
    if (c != CC_NUMBER && cp != '\r' && cp != '\n' && i + clen < n &&
        class_at(s, n, i + clen, sp, &k, &cp2) == CC_LETTER)
        return run_end(s, n, i + clen + k, CC_LETTER, sp) - i;
    /* \p{N}{1,D} */
    if (c == CC_NUMBER) {
        size_t e = i + clen;
        for (int d = 1; d < max_digits && e < n; d++) {
            if (class_at(s, n, e, sp, &k, &cp2) != CC_NUMBER)
                break;
            e += k;
        }
        return e - i;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' (the optional space is U+0020 only) */
    size_t j = i;
    enum CharClass c2 = c;
    size_t c2len = clen;
    if (cp == ' ' && i + 1 < n && class_at(s, n, i + 1, sp, &k, &cp2) == CC_OTHER)
        j = i + 1, c2 = CC_OTHER, c2len = k;
    if (c2 == CC_OTHER) {
        size_t e = run_end(s, n, j + c2len, CC_OTHER, sp);
        while (e < n && (s[e] == '\r' || s[e] == '\n'))
            e++;
        return e - i;
    }
    /* Here c is CC_SPACE. '\s*[\r\n]+': \s* backtracks from the whole space
     * run to the last CR or LF in it, and [\r\n]+ takes that one (the next
     * character is not CR or LF). */
    size_t e = i, last = i, crlf = SIZE_MAX;
    while (e < n) {
        if (class_at(s, n, e, sp, &k, &cp2) != CC_SPACE)
            break;
        if (cp2 == '\r' || cp2 == '\n')
            crlf = e;
        last = e;
        e += k;
    }
    if (crlf != SIZE_MAX)
        return crlf + 1 - i;
    /* '\s+(?!\S)|\s+' */
    return space_run_len(n, i, e, last);
}

/* Append NFC of s[0..n) (valid UTF-8) with utf8proc. */
static int nfc_map(StrBuf *b, const char *s, size_t n)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &mapped,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    int rc = r < 0 ? -1 : strbuf_add(b, (const char *)mapped, (size_t)r);
    free(mapped);
    return rc;
}

/* Append NFC of the valid UTF-8 s[0..n). ASCII is its own NFC, and an ASCII
 * character never follows in a composition nor moves in reordering (it is
 * a starter and never the second of a canonical composite): only each run
 * of non-ASCII characters, with the character before it (which may be the
 * starter its marks compose with), goes through utf8proc. */
static int nfc_run(StrBuf *b, const char *s, size_t n)
{
    size_t i = 0, done = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t start = i > done ? i - 1 : i, e = i;
        while (e < n && (unsigned char)s[e] >= 0x80)
            e++;
        if (strbuf_add(b, s + done, start - done) || nfc_map(b, s + start, e - start))
            return -1;
        done = i = e;
    }
    return strbuf_add(b, s + done, n - done);
}

int tok_nfc(const char *s, size_t n, char **out, size_t *out_n)
{
    StrBuf b = {0};
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, i = 0;
    int rc = strbuf_add(&b, "", 0);
    while (rc == 0 && i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode(u + i, n - i, &cp);
        if (k > 0) {
            i += k;
            continue;
        }
        /* an invalid byte ends the run [start, i) and is kept as it is */
        rc = nfc_run(&b, s + start, i - start);
        if (rc == 0)
            rc = strbuf_add(&b, s + i, 1);
        start = ++i;
    }
    if (rc == 0)
        rc = nfc_run(&b, s + start, n - start);
    if (rc) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *out_n = b.len;
    return 0;
}

int tok_is_format(uint32_t cp)
{
    return cp >= 0x80 && cp <= 0x10FFFF &&
           utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_CF;
}

const char *tok_unicode_version(void)
{
    return utf8proc_unicode_version();
}
