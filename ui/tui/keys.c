/* keys.c: the key table and key-name parsing (see keys.h). */
#include "config.h"

#include "tui/keys.h"

#include <string.h>
#include <strings.h>

const KeyBinding keys_table[] = {
#define X(name, k1, k2, keys, help) {ACTION_##name, #name, k1, k2, keys, help},
    UI_KEYS(X)
#undef X
};
const int keys_count = (int)(sizeof keys_table / sizeof keys_table[0]);

int keys_lookup(const KeyBinding *table, int n, int32_t key)
{
    if (key == KEY_CODE_NONE)
        return 0;
    for (int i = 0; i < n; i++)
        if (table[i].key1 == key || table[i].key2 == key)
            return table[i].action;
    return 0;
}

KeyAction keys_action(int32_t key)
{
    return (KeyAction)keys_lookup(keys_table, keys_count, key);
}

static const struct {
    const char *name;
    int32_t code;
} key_names[] = {
    {"Right", KEY_CODE_RIGHT},
    {"Left", KEY_CODE_LEFT},
    {"Up", KEY_CODE_UP},
    {"Down", KEY_CODE_DOWN},
    {"S-Left", KEY_CODE_SLEFT},
    {"S-Right", KEY_CODE_SRIGHT},
    {"Home", KEY_CODE_HOME},
    {"End", KEY_CODE_END},
    {"PgUp", KEY_CODE_PGUP},
    {"PgDn", KEY_CODE_PGDN},
    {"Tab", KEY_CODE_TAB},
    {"S-Tab", KEY_CODE_BTAB},
    {"Enter", KEY_CODE_ENTER},
    {"Esc", KEY_CODE_ESC},
    {"Space", ' '},
    {"BS", KEY_CODE_BACKSPACE},
    {"F1", KEY_CODE_F1},
    {"F10", KEY_CODE_F10},
    {"C-d", KEY_CODE_CTRL_D},
    {"C-u", KEY_CODE_CTRL_U},
    {"WheelUp", KEY_CODE_WHEEL_UP},
    {"WheelDown", KEY_CODE_WHEEL_DOWN},
    {"C-l", KEY_CODE_CTRL_L},
};

int32_t keys_parse_name(const char *tok)
{
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if (strcasecmp(tok, key_names[i].name) == 0)
            return key_names[i].code;
    if (tok[0] && !tok[1])
        return (unsigned char)tok[0];
    return KEY_CODE_NONE;
}
