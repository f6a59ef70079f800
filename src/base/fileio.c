/* fileio.c: output rule, atomic writer, whole-file reader (see fileio.h). */
#define _GNU_SOURCE 1 /* renameat2, realpath */
#include "config.h"

#include "base/mem.h"
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* ================================================================ paths */

char *fileio_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* ================================================================ inputs */

typedef struct InputId {
    dev_t dev;
    ino_t ino;
} InputId;

static InputId *inputs;
static size_t n_inputs, cap_inputs;

int fileio_is_input(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i].dev == dev && inputs[i].ino == ino)
            return 1;
    return 0;
}

static void note_input(const struct stat *st)
{
    if (!S_ISREG(st->st_mode) || fileio_is_input(st->st_dev, st->st_ino))
        return;
    if (n_inputs == cap_inputs) {
        size_t nc = cap_inputs ? cap_inputs * 2 : 16;
        InputId *p = realloc(inputs, nc * sizeof *p);
        if (!p)
            return; /* the check then misses this file; the temp + rename still
                       never truncates it in place */
        inputs = p, cap_inputs = nc;
    }
    inputs[n_inputs].dev = st->st_dev;
    inputs[n_inputs].ino = st->st_ino;
    n_inputs++;
}

void fileio_note_input_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0)
        note_input(&st);
}

static const char *kind_name(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
           : S_ISBLK(m)  ? "a block device"
           : S_ISCHR(m)  ? "a character device"
           : S_ISLNK(m)  ? "a symbolic link"
                         : "not a regular file";
}

DrrlStatus fileio_open_input(const char *path, unsigned flags, int *fd, DrrlError *err)
{
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO without a writer must not block. */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f < 0) {
        int e = errno;
        return drrl_error(err, drrl_status_of_read_errno(e), "%s: cannot open: %s", path,
                          strerror(e));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        return drrl_error(err, DRRL_E_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode) || (!S_ISREG(st.st_mode) && !(flags & FILEIO_SPECIAL_OK))) {
        close(f);
        return drrl_error(err, DRRL_E_INPUT, "%s: is %s, not a regular file", path,
                          kind_name(st.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    note_input(&st);
    *fd = f;
    return DRRL_OK;
}

/* Read fd to EOF into *buf (at most max bytes; one more is read to detect
 * overflow). Returns 0, -1 with errno on a read error or no memory, 1 when
 * the bound was exceeded (the first max bytes are kept). */
static int read_bounded(int fd, size_t max, size_t hint, char **buf, size_t *len)
{
    size_t cap = hint < max ? hint : max, n = 0;
    if (cap < 4096)
        cap = 4096 < max ? 4096 : max;
    char *b = malloc(cap + 2);
    if (!b)
        return -1;
    for (;;) {
        if (n == cap + 1) {
            if (cap >= max)
                break; /* read one byte past the bound */
            size_t nc = cap > max / 2 ? max : cap * 2;
            char *p = realloc(b, nc + 2);
            if (!p) {
                free(b);
                errno = ENOMEM;
                return -1;
            }
            b = p, cap = nc;
        }
        ssize_t k = read(fd, b + n, cap + 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(b);
            errno = e;
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    int over = n > max;
    if (over)
        n = max;
    b[n] = '\0';
    *buf = b, *len = n;
    return over;
}

DrrlStatus fileio_read_file(const char *path, size_t max, unsigned flags, char **buf,
                            size_t *len, DrrlError *err)
{
    *buf = NULL;
    *len = 0;
    int fd = 0, is_stdin = (flags & FILEIO_STDIN) && strcmp(path, "-") == 0;
    if (!is_stdin) {
        DrrlStatus s = fileio_open_input(path, flags, &fd, err);
        if (s)
            return s;
    }
    struct stat st;
    size_t hint = 65536;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > max && !(flags & FILEIO_TRUNCATE)) {
            if (!is_stdin)
                close(fd);
            return drrl_error(err, DRRL_E_INPUT, "%s: %lld bytes, over the %zu-byte limit",
                              path, (long long)st.st_size, max);
        }
        hint = (size_t)st.st_size + 1;
    } else if (max > FILEIO_MAX_STREAM) {
        max = FILEIO_MAX_STREAM; /* /dev/zero or an endless pipe: bounded memory */
    }
    int r = read_bounded(fd, max, hint, buf, len);
    int e = errno;
    if (!is_stdin)
        close(fd);
    if (r < 0)
        return drrl_error(err, e == ENOMEM ? DRRL_E_NOMEM : DRRL_E_IO, "%s: read error: %s",
                          path, strerror(e));
    if (r > 0 && !(flags & FILEIO_TRUNCATE)) {
        free(*buf);
        *buf = NULL;
        *len = 0;
        return drrl_error(err, DRRL_E_INPUT, "%s: more than the %zu-byte limit", path, max);
    }
    return DRRL_OK;
}

DrrlStatus fileio_read_json(const char *path, size_t json_flags, json_t **out, DrrlError *err)
{
    char *text;
    size_t len;
    *out = NULL;
    DrrlStatus s = fileio_read_file(path, FILEIO_MAX_JSON, 0, &text, &len, err);
    if (s)
        return s;
    json_error_t je;
    *out = json_loadb(text, len, json_flags, &je);
    free(text);
    if (!*out)
        return drrl_error(err, DRRL_E_INPUT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return DRRL_OK;
}

/* ================================================================ temporaries */

enum { N_TEMP = 32 };
static struct {
    volatile sig_atomic_t used;
    char path[PATH_MAX];
} temps[N_TEMP];
static pid_t temps_owner;

static int temp_register(const char *path)
{
    if (strlen(path) >= PATH_MAX)
        return -1;
    for (int i = 0; i < N_TEMP; i++)
        if (!temps[i].used) {
            memcpy(temps[i].path, path, strlen(path) + 1);
            temps_owner = getpid();
            temps[i].used = 1;
            return i;
        }
    return -1;
}

static void temp_forget(int slot)
{
    if (slot >= 0 && slot < N_TEMP)
        temps[slot].used = 0;
}

void fileio_remove_temps(void)
{
    if (getpid() != temps_owner)
        return;
    for (int i = 0; i < N_TEMP; i++)
        if (temps[i].used) {
            unlink(temps[i].path);
            temps[i].used = 0;
        }
}

/* ================================================================ outputs */

enum { MODE_STDOUT, MODE_NEW, MODE_REPLACE, MODE_THROUGH };

struct FileOut {
    int mode;
    unsigned flags;
    char *target; /* where the file is published (a link's target resolved) */
    char *shown;  /* the path as the user gave it, for messages */
    char *tmp;
    int slot;
    FILE *f;
};

static void out_free(FileOut *o)
{
    if (!o)
        return;
    if (o->f && o->f != stdout)
        fclose(o->f);
    if (o->tmp && o->mode != MODE_THROUGH) {
        unlink(o->tmp);
        temp_forget(o->slot);
    }
    DRRL_FREE(o->tmp, o->target, o->shown, o);
}

/* Directory part of path (malloc'ed; "." when none). */
static char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return strdup(".");
    if (s == path)
        return strdup("/");
    size_t n = (size_t)(s - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static const char *base_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Apply the output rule to path: *mode and, for a link, *resolved
 * (malloc'ed; NULL otherwise). */
static DrrlStatus out_rule(const char *path, unsigned flags, int *mode, char **resolved,
                           DrrlError *err)
{
    *resolved = NULL;
    if (!*path)
        return drrl_error(err, DRRL_E_USAGE, "an output path is empty");
    if (strlen(path) >= PATH_MAX || strlen(base_of(path)) > NAME_MAX)
        return drrl_error(err, DRRL_E_USAGE, "%.60s...: output path too long (%zu bytes)", path,
                          strlen(path));
    struct stat st;
    if (lstat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) {
            *mode = MODE_NEW;
            return DRRL_OK;
        }
        return drrl_error(err,
                          drrl_status_of_write_errno(e) == DRRL_E_NOTFOUND
                              ? DRRL_E_NOTFOUND
                              : drrl_status_of_read_errno(e),
                          "%s: cannot write: %s", path, strerror(e));
    }
    if (S_ISLNK(st.st_mode)) {
        char *r = realpath(path, NULL);
        if (!r || stat(r, &st) != 0) {
            free(r);
            return drrl_error(err, DRRL_E_USAGE,
                              "%s: a symbolic link to a missing file; give the path to write",
                              path);
        }
        *resolved = r;
    }
    if (!(flags & FILEIO_UPDATE) && fileio_is_input(st.st_dev, st.st_ino)) {
        free(*resolved);
        *resolved = NULL;
        return drrl_error(err, DRRL_E_USAGE,
                          "%s: is an input of this command; refusing to overwrite it", path);
    }
    if (S_ISDIR(st.st_mode) || (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))) {
        free(*resolved);
        *resolved = NULL;
        return drrl_error(err, DRRL_E_USAGE,
                          "%s: is %s; drrl writes only regular files and character devices",
                          path, kind_name(st.st_mode));
    }
    if (!(flags & FILEIO_FORCE)) {
        free(*resolved);
        *resolved = NULL;
        return drrl_error(err, DRRL_E_EXISTS, "%s: already exists (use --force to replace it)",
                          path);
    }
    *mode = S_ISCHR(st.st_mode) ? MODE_THROUGH : MODE_REPLACE;
    return DRRL_OK;
}

DrrlStatus fileio_out_check(const char *path, unsigned flags, DrrlError *err)
{
    if ((flags & FILEIO_STDOUT) && strcmp(path, "-") == 0)
        return DRRL_OK;
    int mode;
    char *r;
    DrrlStatus s = out_rule(path, flags, &mode, &r, err);
    free(r);
    return s;
}

/* Create the temporary file beside o->target. Returns the fd or -1. */
static int make_temp(FileOut *o)
{
    char *dir = dir_of(o->target);
    const char *base = base_of(o->target);
    size_t bl = strlen(base);
    if (!dir)
        return -1;
    size_t n = strlen(dir) + bl + 32;
    o->tmp = malloc(n);
    if (!o->tmp) {
        free(dir);
        return -1;
    }
    if (bl + 11 <= NAME_MAX)
        snprintf(o->tmp, n, "%s.tmp.XXXXXX", o->target);
    else
        snprintf(o->tmp, n, "%s/.drrl.tmp.XXXXXX", dir);
    free(dir);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        o->tmp = NULL;
        errno = e;
        return -1;
    }
    o->slot = temp_register(o->tmp);
    if (o->slot < 0) {
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        errno = EMFILE;
        return -1;
    }
    /* mkstemp makes 0600; give the file the usual umask-derived mode. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    return fd;
}

DrrlStatus fileio_out_open(FileOut **out, const char *path, unsigned flags, DrrlError *err)
{
    *out = NULL;
    FileOut *o = calloc(1, sizeof *o);
    int is_stdout = (flags & FILEIO_STDOUT) && strcmp(path, "-") == 0;
    if (!o || !(o->shown = strdup(is_stdout ? "standard output" : path))) {
        free(o);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    o->flags = flags;
    o->slot = -1;
    if (is_stdout) {
        o->mode = MODE_STDOUT;
        o->f = stdout;
        *out = o;
        return DRRL_OK;
    }
    char *resolved;
    DrrlStatus s = out_rule(path, flags, &o->mode, &resolved, err);
    if (s) {
        out_free(o);
        return s;
    }
    o->target = resolved ? resolved : strdup(path);
    if (!o->target) {
        out_free(o);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    int fd;
    if (o->mode == MODE_THROUGH) {
        fd = open(o->target, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode))) {
            close(fd);
            fd = -1;
            errno = EINVAL;
        }
        if (fd >= 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0)
                (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        }
        o->tmp = fd >= 0 ? strdup(o->target) : NULL;
    } else {
        fd = make_temp(o);
    }
    if (fd < 0) {
        int e = errno;
        out_free(o);
        return drrl_error(err, drrl_status_of_write_errno(e), "%s: cannot create: %s", path,
                          strerror(e));
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        out_free(o);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    setvbuf(o->f, NULL, _IOFBF, 1 << 20);
    *out = o;
    return DRRL_OK;
}

FILE *fileio_out_stream(FileOut *o)
{
    return o->f;
}

const char *fileio_out_temp_path(const FileOut *o)
{
    return o->tmp ? o->tmp : o->shown;
}

void fileio_out_abort(FileOut *o)
{
    out_free(o);
}

/* Flush, fsync (regular files) and close o's stream. Returns 0 or errno. */
static int out_close(FileOut *o)
{
    FILE *f = o->f;
    o->f = NULL;
    int bad = fflush(f) != 0 || ferror(f);
    int e = bad ? (errno ? errno : EIO) : 0;
    if (o->mode == MODE_STDOUT)
        return e;
    if (!bad && o->mode != MODE_THROUGH && fsync(fileno(f)) != 0)
        bad = 1, e = errno;
    if (fclose(f) != 0 && !bad)
        bad = 1, e = errno;
    return bad ? e : 0;
}

static int lock_dir(const char *target)
{
    char *dir = dir_of(target);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (fd >= 0)
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
            ;
    return fd;
}

static void unlock_dir(int fd)
{
    if (fd >= 0) {
        (void)fsync(fd);
        flock(fd, LOCK_UN);
        close(fd);
    }
}

/* Move o->tmp to o->target; 0 or -1 with errno (EEXIST: target exists and
 * replacing was not allowed). */
static int publish(FileOut *o)
{
    if (o->mode == MODE_STDOUT || o->mode == MODE_THROUGH)
        return 0;
    struct stat st;
    if (stat(o->target, &st) == 0) {
        if (!(o->flags & FILEIO_UPDATE) && fileio_is_input(st.st_dev, st.st_ino)) {
            errno = EBUSY;
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            errno = EEXIST;
            return -1;
        }
    }
    if (o->flags & FILEIO_FORCE)
        return rename(o->tmp, o->target);
    if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->target, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
    if (link(o->tmp, o->target) == 0) {
        unlink(o->tmp);
        return 0;
    }
    if (errno == EEXIST)
        return -1;
    /* File systems with neither: check, then rename (a small race). */
    if (lstat(o->target, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(o->tmp, o->target);
}

static DrrlStatus publish_error(FileOut *o, int e, DrrlError *err)
{
    if (e == EBUSY)
        return drrl_error(err, DRRL_E_USAGE,
                          "%s: is an input of this command; refusing to overwrite it",
                          o->shown);
    if (e == EEXIST) {
        if (o->flags & FILEIO_KEEP_ON_CONFLICT) {
            temp_forget(o->slot);
            DrrlStatus s = drrl_error(err, DRRL_E_EXISTS,
                                      "%s: appeared while drrl was writing it; not replaced, "
                                      "the result is kept in %s",
                                      o->shown, o->tmp);
            free(o->tmp);
            o->tmp = NULL;
            return s;
        }
        return drrl_error(err, DRRL_E_EXISTS,
                          "%s: appeared while drrl was writing it (another process?); not "
                          "replaced",
                          o->shown);
    }
    return drrl_error(err, drrl_status_of_write_errno(e), "%s: cannot move %s into place: %s",
                      o->shown, o->tmp, strerror(e));
}

static void published(FileOut *o)
{
    temp_forget(o->slot);
    free(o->tmp);
    o->tmp = NULL;
}

DrrlStatus fileio_out_commit(FileOut *o, DrrlError *err)
{
    DrrlStatus s = DRRL_OK;
    int e = out_close(o);
    if (e) {
        s = drrl_error(err, drrl_status_of_write_errno(e), "%s: write failed: %s", o->shown,
                       strerror(e));
    } else if (o->mode == MODE_NEW || o->mode == MODE_REPLACE) {
        int lk = lock_dir(o->target);
        if (publish(o) != 0)
            s = publish_error(o, errno, err);
        else
            published(o);
        unlock_dir(lk);
    }
    if (o->mode == MODE_THROUGH) {
        free(o->tmp);
        o->tmp = NULL;
    }
    out_free(o);
    return s;
}

DrrlStatus fileio_out_commit_pair(FileOut *a, FileOut *b, DrrlError *err)
{
    DrrlStatus s = DRRL_OK;
    int e = out_close(a);
    FileOut *bad = a;
    if (!e)
        e = out_close(b), bad = b;
    if (e) {
        s = drrl_error(err, drrl_status_of_write_errno(e), "%s: write failed: %s", bad->shown,
                       strerror(e));
        goto done;
    }
    int lk = lock_dir(a->target ? a->target : ".");
    struct stat st;
    if (!(b->flags & FILEIO_FORCE) && b->mode == MODE_NEW && lstat(b->target, &st) == 0) {
        s = publish_error(b, EEXIST, err);
    } else if (publish(a) != 0) {
        s = publish_error(a, errno, err);
    } else {
        published(a);
        if (publish(b) != 0) {
            int e2 = errno;
            if (a->mode == MODE_NEW)
                unlink(a->target); /* ours, published a moment ago */
            s = publish_error(b, e2, err);
        } else {
            published(b);
        }
    }
    unlock_dir(lk);
done:
    if (a->mode == MODE_THROUGH) {
        free(a->tmp);
        a->tmp = NULL;
    }
    if (b->mode == MODE_THROUGH) {
        free(b->tmp);
        b->tmp = NULL;
    }
    out_free(a);
    out_free(b);
    return s;
}

DrrlStatus fileio_write_all(const char *path, const void *data, size_t len, unsigned flags,
                            DrrlError *err)
{
    FileOut *o;
    DrrlStatus s = fileio_out_open(&o, path, flags, err);
    if (s)
        return s;
    if (len && fwrite(data, 1, len, o->f) != len) {
        /* the error is reported by commit through ferror */
    }
    return fileio_out_commit(o, err);
}
