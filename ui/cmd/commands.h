/* commands.h: the table of drrl subcommands (one X-macro line each).
 *
 * X(name, summary): the command `drrl name` (with '_' typed as '-', so
 * train_lm is `drrl train-lm`) runs
 *   int cmd_name(int argc, char **argv);   (argv[0] is "name")
 * defined in ui/cmd/cmd_name.c. Only commands that work belong here: `drrl help`
 * lists this table. Keep one line per command, in the order help shows them.
 */
#ifndef DRRL_COMMANDS_H
#define DRRL_COMMANDS_H

#define DRRL_COMMANDS(X)                                                                       \
    X(info, "show a model directory's architecture, sizes, dtype and tokenizer")               \
    X(dump, "write logits, attention and hidden states of the exact forward pass")             \
    X(bench, "measure speed: bench forward (exact forward pass tokens/s)")                     \
    X(tokenize, "print the token ids of a text")                                               \
    X(explore, "step a model through a text token by token in the TUI, live")                  \
    X(replay, "open a recorded trace in the explorer, without the model")                      \
    X(tour, "a guided lesson on the live engine and the shipped model, in the explorer")       \
    X(diff, "compare two traces: first divergence, per-layer rank, error and FLOP deltas")     \
    X(version, "print the version")                                                            \
    X(run, "run a model over a text with an attention method; print FLOPs, fidelity, bounds")  \
    X(eval,                                                                                    \
      "compare attention methods: bits per byte, perplexity, FLOPs, fidelity, wall time")      \
    X(eval_sentiment,                                                                          \
      "sentence sentiment probe of a frozen model per attention method (k-fold)")              \
    X(train_lm, "train a byte-level language model; export it for drrl and transformers")      \
    X(train_policy, "train the DR-RL rank policy with PPO on a frozen model")                  \
    X(convert,                                                                                 \
      "rewrite a drrl-trained model directory with float16, bfloat16 or float32 weights")

#define X(name, summary) int cmd_##name(int argc, char **argv);
DRRL_COMMANDS(X)
#undef X

#endif
