/* signals.c: SIGINT/SIGTERM/SIGHUP to a polled flag (see signals.h). */
#include "config.h"

#include "cli/signals.h"

#include "base/fileio.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t caught;
static const int watched[] = {SIGINT, SIGTERM, SIGHUP};
enum { N_WATCHED = sizeof watched / sizeof watched[0] };
static struct sigaction previous[N_WATCHED];
static int installed;

static void on_signal(int sig)
{
    if (caught) {
        /* Second signal: the program did not stop in time; let it die, but
         * without leaving temporary files behind. */
        fileio_remove_temps();
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    caught = sig;
}

/* Outside signals_catch: remove the temporary files, then die of the signal. */
static void on_fatal(int sig)
{
    fileio_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

void signals_init(void)
{
    for (int i = 0; i < N_WATCHED; i++) {
        struct sigaction old;
        if (sigaction(watched[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue; /* nohup and the like: stay ignored */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal;
        sigemptyset(&sa.sa_mask);
        sigaction(watched[i], &sa, NULL);
    }
    atexit(fileio_remove_temps);
}

void signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_WATCHED; i++)
        sigaddset(&sa.sa_mask, watched[i]);
    caught = 0;
    for (int i = 0; i < N_WATCHED; i++)
        sigaction(watched[i], &sa, installed ? NULL : &previous[i]);
    installed = 1;
}

void signals_restore(void)
{
    if (!installed)
        return;
    for (int i = 0; i < N_WATCHED; i++)
        sigaction(watched[i], &previous[i], NULL);
    installed = 0;
}

int signals_caught(void)
{
    return caught;
}

bool signals_take_sigint(void)
{
    if (caught != SIGINT)
        return false;
    caught = 0;
    return true;
}

const char *signals_name(void)
{
    switch (caught) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "";
    }
}
