/* keys.h: the TUI's key table. One X-macro line per action gives its keys,
 * its name and its help text; it feeds the dispatcher (keys_action), the `?`
 * help overlay, `drrl explore --keys-help` and, through tests/test_keys.c,
 * the KEYS table of man/drrl.1 (the test fails when the two disagree).
 *
 * Key codes are curses-independent: printable characters are their Unicode
 * value, special keys are KEY_CODE_* below (ui/tui/term.c maps curses codes).
 */
#ifndef DRRL_KEYS_H
#define DRRL_KEYS_H

#include <stdint.h>

enum {
    KEY_CODE_NONE = 0,
    KEY_CODE_TAB = '\t',
    KEY_CODE_ENTER = '\n',
    KEY_CODE_ESC = 27,
    KEY_CODE_BACKSPACE = 127,
    KEY_CODE_CTRL_D = 4,
    KEY_CODE_CTRL_L = 12,
    KEY_CODE_CTRL_U = 21,
    KEY_CODE_SPECIAL = 0x110000,
    KEY_CODE_LEFT = KEY_CODE_SPECIAL,
    KEY_CODE_RIGHT,
    KEY_CODE_UP,
    KEY_CODE_DOWN,
    KEY_CODE_SLEFT,  /* shift-left */
    KEY_CODE_SRIGHT, /* shift-right */
    KEY_CODE_HOME,
    KEY_CODE_END,
    KEY_CODE_PGUP,
    KEY_CODE_PGDN,
    KEY_CODE_BTAB, /* shift-tab */
    KEY_CODE_F1,
    KEY_CODE_F10,
    KEY_CODE_WHEEL_UP, /* mouse wheel; the pointer in the App's mouse_x/mouse_y */
    KEY_CODE_WHEEL_DOWN,
    KEY_CODE_MOUSE,  /* a click: position in the App's mouse_x/mouse_y */
    KEY_CODE_RESIZE, /* the terminal changed size */
    KEY_CODE_TICK,   /* a timer tick (playback) */
};

/* X(action, key1, key2, "keys as shown", "help text")
 * key2 is KEY_CODE_NONE when an action has one key. Order = help order. */
#define UI_KEYS(X)                                                                             \
    X(next_token, KEY_CODE_RIGHT, 'l', "Right l", "next token")                                \
    X(prev_token, KEY_CODE_LEFT, 'h', "Left h", "previous token")                              \
    X(next_segment, ']', KEY_CODE_PGDN, "] PgDn", "first token of the next segment")           \
    X(prev_segment, '[', KEY_CODE_PGUP, "[ PgUp",                                              \
      "first token of this or the previous segment")                                           \
    X(first_token, KEY_CODE_HOME, 'g', "Home g", "first token")                                \
    X(last_token, KEY_CODE_END, 'G', "End G", "last token of the text (computed if need be)")  \
    X(page_down, KEY_CODE_CTRL_D, KEY_CODE_NONE, "C-d",                                        \
      "a page forward: the tokens the strip shows (or scroll an overlay)")                     \
    X(page_up, KEY_CODE_CTRL_U, KEY_CODE_NONE, "C-u", "a page back (or scroll an overlay)")    \
    X(layer_up, KEY_CODE_UP, 'k', "Up k", "select the previous layer")                         \
    X(layer_down, KEY_CODE_DOWN, 'j', "Down j", "select the next layer")                       \
    X(head_prev, ',', KEY_CODE_SLEFT, ", S-Left", "select the previous head")                  \
    X(head_next, '.', KEY_CODE_SRIGHT, ". S-Right", "select the next head")                    \
    X(select_click, KEY_CODE_MOUSE, KEY_CODE_NONE, "click",                                    \
      "go to the clicked token, select the clicked head, or focus a pane")                     \
    X(wheel_up, KEY_CODE_WHEEL_UP, KEY_CODE_NONE, "wheel up",                                  \
      "scroll the pane under the pointer: layers in the rank grid and ledger, else tokens")    \
    X(wheel_down, KEY_CODE_WHEEL_DOWN, KEY_CODE_NONE, "wheel down", "scroll the other way")    \
    X(focus_next, KEY_CODE_TAB, KEY_CODE_NONE, "Tab", "focus the next pane")                   \
    X(focus_prev, KEY_CODE_BTAB, KEY_CODE_NONE, "S-Tab", "focus the previous pane")            \
    X(zoom, 'z', KEY_CODE_NONE, "z", "show the focused pane alone (again: back)")              \
    X(play, ' ', KEY_CODE_NONE, "Space", "play or pause")                                      \
    X(faster, '+', '=', "+", "play faster")                                                    \
    X(slower, '-', KEY_CODE_NONE, "-", "play slower")                                          \
    X(goto_token, ':', KEY_CODE_NONE, ":", "go to a token by number")                          \
    X(search, '/', KEY_CODE_NONE, "/", "search the text, across tokens (#ID: a token id)")     \
    X(search_next, 'n', KEY_CODE_NONE, "n", "next match of the search")                        \
    X(search_prev, 'N', KEY_CODE_NONE, "N", "previous match of the search")                    \
    X(break_add, 'b', KEY_CODE_NONE, "b",                                                      \
      "add a breakpoint (rank, err X, masked, token N, head L.H)")                             \
    X(break_clear, 'B', KEY_CODE_NONE, "B", "delete all breakpoints")                          \
    X(cont, 'c', KEY_CODE_NONE, "c", "continue to the next breakpoint")                        \
    X(reverse_cont, 'C', KEY_CODE_NONE, "C", "step back to the previous breakpoint")           \
    X(scale, 's', KEY_CODE_NONE, "s", "spectrum scale: linear or log")                         \
    X(budget_up, '}', KEY_CODE_NONE, "}",                                                      \
      "live: the policy's FLOP budget +0.05, from this segment")                               \
    X(budget_down, '{', KEY_CODE_NONE, "{", "live: the policy's FLOP budget -0.05")            \
    X(eps_up, '>', KEY_CODE_NONE, ">", "live: the safety threshold x1.25, from this segment")  \
    X(eps_down, '<', KEY_CODE_NONE, "<", "live: the safety threshold x0.8")                    \
    X(write_trace, 'w', KEY_CODE_NONE, "w",                                                    \
      "write the steps so far as a CSV trace (asks for a file)")                               \
    X(info, 'i', KEY_CODE_NONE, "i", "explain the focused pane in plain words")                \
    X(help, '?', KEY_CODE_F1, "? F1", "this help")                                             \
    X(redraw, KEY_CODE_CTRL_L, KEY_CODE_NONE, "C-l", "redraw the screen")                      \
    X(quit, 'q', KEY_CODE_F10, "q F10", "quit (Esc closes an overlay or prompt)")

typedef enum KeyAction {
    ACTION_NONE = 0,
#define X(name, k1, k2, keys, help) ACTION_##name,
    UI_KEYS(X)
#undef X
        ACTION_COUNT
} KeyAction;

/* One row of a key table: UI_KEYS here, UI_DIFF_KEYS (diff.h). */
typedef struct KeyBinding {
    int action; /* a KeyAction, or a DiffAction in the difference view's table */
    const char *name;
    int32_t key1, key2;
    const char *keys;
    const char *help;
} KeyBinding;

/* The table (ACTION_COUNT - 1 entries, in UI_KEYS order). */
extern const KeyBinding keys_table[];
extern const int keys_count;

/* The action bound to key in table[0..n), or 0 (ACTION_NONE, DIFF_ACTION_NONE). */
int keys_lookup(const KeyBinding *table, int n, int32_t key);

/* The action bound to a key, or ACTION_NONE. */
KeyAction keys_action(int32_t key);

/* Parse one token of a scripted key string (--keys): a key name (Right,
 * Left, Up, Down, S-Left, S-Right, Home, End, PgUp, PgDn, Tab, S-Tab, Enter,
 * Esc, Space, BS, F1, F10, C-l, C-d, C-u, WheelUp, WheelDown) or a single character. Returns
 * the key code, or KEY_CODE_NONE when the token is neither (callers then type it character by
 * character). */
int32_t keys_parse_name(const char *tok);

#endif
