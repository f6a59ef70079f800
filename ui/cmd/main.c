/* main.c: the drrl command's dispatcher (git-style subcommands). */
#include "config.h"

#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "attn/lowrank_kernel.h"
#include "base/gemm.h"
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/signals.h"
#include "cmd/commands.h"

/* Command names are C identifiers in the table; '_' shows as '-'
 * (train_lm is `drrl train-lm`). */
static const CliCommand commands[] = {
#define X(name, summary) {#name, summary, cmd_##name},
    DRRL_COMMANDS(X)
#undef X
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static const CliCommand *find_command(const char *name)
{
    return cli_command_find(commands, n_commands, name);
}

/* The user-facing spelling of a command name ('_' -> '-'). */
static const char *display_name(const char *table, char *buf, size_t n)
{
    snprintf(buf, n, "%s", table);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
    return buf;
}

static void print_help(void)
{
    printf("usage: drrl [--help] [--version] <command> [<args>]\n"
           "\n"
           "drrl: a terminal debugger and explorer for dynamic low-rank attention\n"
           "(DR-RL) in transformer language models.\n"
           "\n"
           "Commands:\n");
    for (size_t i = 0; i < n_commands; i++) {
        char buf[64];
        printf("  %-13s %s\n", display_name(commands[i].name, buf, sizeof buf),
               commands[i].summary);
    }
    printf("\n"
           "'drrl help COMMAND' or 'drrl COMMAND --help' describes one command.\n"
           "See drrl(1) for everything else.\n");
}

/* Run cmd with argv {name, "--help"}. */
static int command_help(const CliCommand *cmd)
{
    char name[64], flag[] = "--help";
    display_name(cmd->name, name, sizeof name);
    char *argv[] = {name, flag, NULL};
    return cli_command_run(cmd, 2, argv);
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: drrl version\n\nPrint drrl's version, the MPI library it was built "
               "with\n(for mpirun -np N drrl eval|train-policy), if any, and the kernel "
               "variants\nthis CPU runs: the linear layers' (avx512 or avx2, else OpenBLAS) "
               "and the\n"
               "rank-r attention kernel's (avx512-8, avx512, avx2 or portable: the same\n"
               "bits on each).\n");
        return CLI_EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    printf("drrl %s (MPI: %s; kernels: linear %s, rank-r %s)\n", PACKAGE_VERSION,
           dist_library() ? dist_library() : "none",
           gemm_best() == GEMM_ISA_PORTABLE ? "openblas" : gemm_isa_name(gemm_best()),
           lowrank_kernel_isa_name(lowrank_kernel_best()));
    return CLI_EXIT_OK;
}

/* OpenBLAS 0.3.21 (Debian 12) does not know recent Intel models (Sapphire and
 * Emerald Rapids among them) and falls back to its Prescott (SSE3) kernels,
 * 4 to 5 times slower than the AVX-512 ones on the same core; with
 * OPENBLAS_CORETYPE set to any value its detection then finds the right
 * kernels. So when no OPENBLAS_CORETYPE is set, the kernels in use are one of
 * the SSE-only generations and the CPU (and the kernel's saved state) has
 * AVX2 and FMA, drrl runs itself again with OPENBLAS_CORETYPE naming the
 * matching kernels (SkylakeX with AVX-512F, else Haswell). Not under
 * valgrind (its CPU lacks AVX-512, and its child would run unchecked). If the
 * exec fails, drrl simply goes on with the kernels it has. */
static void blas_kernels_check(char **argv)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *core = openblas_get_corename();
    const char *pre = getenv("LD_PRELOAD");
    if (getenv("OPENBLAS_CORETYPE") || !core || (pre && strstr(pre, "vgpreload")))
        return;
    static const char *const sse_only[] = {"prescott", "core2", "penryn", "dunnington",
                                           "nehalem",  "atom",  "katmai", "northwood"};
    int slow = 0;
    for (size_t i = 0; i < sizeof sse_only / sizeof *sse_only; i++)
        slow |= strcasecmp(core, sse_only[i]) == 0;
    __builtin_cpu_init();
    if (!slow || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return;
    setenv("OPENBLAS_CORETYPE", __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
}

static int run_main(int argc, char **argv);

int main(int argc, char **argv)
{
    blas_kernels_check(argv);
    /* A write past RLIMIT_FSIZE must fail with EFBIG, reported and cleaned up
     * like a full disk, not kill drrl with SIGXFSZ and leave a partial file. */
    signal(SIGXFSZ, SIG_IGN);
    signals_init(); /* a signal or exit removes the temporary output files */
    /* MPI, when mpirun started drrl (cli/dist.h) */
    dist_init(&argc, &argv);
    int rc = run_main(argc, argv);
    /* --help, version, tables: a full standard output is a failure. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == CLI_EXIT_OK)
            rc = cli_error(DRRL_E_IO, "standard output: write error");
    }
    return dist_finish(rc);
}

static int run_main(int argc, char **argv)
{
    if (argc < 2) {
        const CliCommand *explore = find_command("explore");
        if (explore) {
            char name[] = "explore";
            char *av[] = {name, NULL};
            return cli_command_run(explore, 1, av);
        }
        print_help();
        return CLI_EXIT_OK;
    }
    const char *arg = argv[1];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        print_help();
        return CLI_EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
        return cmd_version(1, argv + 1);
    if (strcmp(arg, "help") == 0) {
        if (argc == 2) {
            print_help();
            return CLI_EXIT_OK;
        }
        if (argc > 3)
            return cli_usage_error("help", "expected one command name");
        const CliCommand *cmd = find_command(argv[2]);
        if (!cmd)
            return cli_usage_error(NULL, "'%s' is not a drrl command", argv[2]);
        return command_help(cmd);
    }
    if (arg[0] == '-')
        return cli_usage_error(NULL, "unknown option '%s'", arg);
    const CliCommand *cmd = find_command(arg);
    if (!cmd)
        return cli_usage_error(NULL, "'%s' is not a drrl command", arg);
    return cli_command_run(cmd, argc - 1, argv + 1);
}
