/* fileio.h: the one place where drrl opens files: the output rule, the
 * atomic writer, the whole-file reader and the path join.
 *
 * Output rule (every file drrl writes goes through fileio_out_open):
 *   - "-" is standard output where the caller allows it (FILEIO_STDOUT);
 *   - an existing path is refused without FILEIO_FORCE (DRRL_E_EXISTS);
 *   - with FILEIO_FORCE only a regular file is replaced; a character device
 *     (/dev/null, a terminal) is written through in place; a FIFO, socket,
 *     block device or directory is refused (DRRL_E_USAGE);
 *   - a symbolic link is written through: the rule applies to the file it
 *     names, which is replaced (the link itself stays); a dangling link is
 *     refused;
 *   - a path that is one of this process's inputs (same st_dev and st_ino as
 *     a file read through fileio_open_input / fileio_read_file) is refused,
 *     even with FILEIO_FORCE (DRRL_E_USAGE);
 *   - the data goes to a temporary file beside the target (TARGET.tmp.XXXXXX,
 *     or DIR/.drrl.tmp.XXXXXX when that name would be too long), fsynced and
 *     then published atomically: without FILEIO_FORCE with
 *     renameat2(RENAME_NOREPLACE) (link(2) where unsupported), so that of two
 *     concurrent writers exactly one succeeds and the other gets
 *     DRRL_E_EXISTS; with FILEIO_FORCE with rename(2). Publishing holds an
 *     flock(2) on the directory, so a pair (a trace CSV and its sidecar) from
 *     two drrl processes is never mixed;
 *   - every temporary file is registered until published or removed;
 *     fileio_remove_temps() (async-signal-safe) removes them all: the CLI
 *     calls it at exit and from its signal handlers.
 *
 * Input rule: files are opened with O_NONBLOCK (a FIFO never blocks the
 * open), directories are refused, special files (FIFO, device, standard
 * input) are refused unless the caller allows them (FILEIO_SPECIAL_OK) and
 * then read with the same byte bound as a regular file's size limit.
 *
 * The engine is single-threaded where it opens files: the input registry and
 * the temporary-file table are process-wide and not locked.
 */
#ifndef DRRL_FILEIO_H
#define DRRL_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/status.h"

/* ---- named limits on input sizes (bytes); each is used in one place. ---- */
#define FILEIO_MAX_JSON (64u << 20)   /* config.json, sidecars, index files */
#define FILEIO_MAX_TEXT (1024u << 20) /* texts, token id files, corpora */
#define FILEIO_MAX_STREAM                                                                      \
    (64u << 20) /* a FIFO, device or standard input: at most this                              \
                   much of any of the above is read from one */
#define FILEIO_MAX_TOKENIZER                                                                   \
    (1024u << 20) /* vocab.json, merges.txt, tokenizer.json                                    \
                     (big vocabularies' are ~20 MB) */

enum {
    FILEIO_FORCE = 1,            /* output: replace an existing regular file */
    FILEIO_STDOUT = 2,           /* output: "-" is standard output */
    FILEIO_KEEP_ON_CONFLICT = 4, /* output: if the target appears meanwhile, keep
                                    the temporary file (named in the message) */
    FILEIO_STDIN = 8,            /* input: "-" is standard input */
    FILEIO_SPECIAL_OK = 16,      /* input: a FIFO or device is read with the bound */
    FILEIO_TRUNCATE = 32,        /* input: stop at the bound instead of failing */
    FILEIO_UPDATE = 64,          /* output: may replace an input on purpose (a
                                    checkpoint resumed and saved again) */
};

/* ---- paths ---- */

/* "DIR/NAME" in a malloc'ed string (NULL when out of memory). */
char *fileio_join(const char *dir, const char *name);

/* ---- inputs ---- */

/* Open path for reading under the input rule; *fd is the open descriptor
 * (blocking mode restored). Regular files are remembered as inputs.
 * what names the file's role in messages ("model file", ...) or NULL. */
DrrlStatus fileio_open_input(const char *path, unsigned flags, int *fd, DrrlError *err);

/* Remember the file open at fd as an input of this process (for files opened
 * elsewhere); non-regular files are ignored. */
void fileio_note_input_fd(int fd);

/* 1 when (dev, ino) is a remembered input. */
int fileio_is_input(dev_t dev, ino_t ino);

/* Read a whole file into a malloc'ed buffer with a NUL after the *len bytes.
 * More than max bytes is DRRL_E_INPUT naming the limit, unless
 * FILEIO_TRUNCATE: then the first max bytes are returned. */
DrrlStatus fileio_read_file(const char *path, size_t max, unsigned flags, char **buf,
                            size_t *len, DrrlError *err);

/* Read a JSON file (at most FILEIO_MAX_JSON bytes) and parse it with
 * jansson's json_flags (0, JSON_REJECT_DUPLICATES, ...). *out is a new
 * reference the caller releases with json_decref, NULL on failure; any JSON
 * value is accepted (the caller checks its type). A syntax error is
 * DRRL_E_INPUT "PATH:LINE:COLUMN: what". */
struct json_t;
DrrlStatus fileio_read_json(const char *path, size_t json_flags, struct json_t **out,
                            DrrlError *err);

/* ---- outputs ---- */

typedef struct FileOut FileOut;

/* Start writing path under the output rule (flags: FILEIO_FORCE,
 * FILEIO_STDOUT, FILEIO_KEEP_ON_CONFLICT). On failure *out is NULL and
 * nothing is left on disk. */
DrrlStatus fileio_out_open(FileOut **out, const char *path, unsigned flags, DrrlError *err);

/* Check path under the output rule without creating anything (for early
 * checks before long work; fileio_out_open checks again). */
DrrlStatus fileio_out_check(const char *path, unsigned flags, DrrlError *err);

/* The stream to write (fully buffered; standard output for "-"). */
FILE *fileio_out_stream(FileOut *o);

/* The temporary file's path (the target itself when written in place). */
const char *fileio_out_temp_path(const FileOut *o);

/* Flush, fsync and publish; frees o whatever happens. A write error seen on
 * the stream is reported here (DRRL_E_IO, DRRL_E_NOTFOUND for a missing
 * directory), and the temporary file is removed. */
DrrlStatus fileio_out_commit(FileOut *o, DrrlError *err);

/* Publish a then b (e.g. a trace CSV and its sidecar, in one directory)
 * under one directory lock: without FILEIO_FORCE, if either target exists
 * neither is published. Frees both. */
DrrlStatus fileio_out_commit_pair(FileOut *a, FileOut *b, DrrlError *err);

/* Remove the temporary file and free o (NULL is fine). */
void fileio_out_abort(FileOut *o);

/* Write len bytes of data to path under the output rule. */
DrrlStatus fileio_write_all(const char *path, const void *data, size_t len, unsigned flags,
                            DrrlError *err);

/* Remove every temporary file still registered by this process (not by a
 * forked child). Async-signal-safe. */
void fileio_remove_temps(void);

#endif
