#!/usr/bin/env python3
"""make_seeds.py: (re)write the seed corpora under tests/fuzz/seeds/.

Seeds are small valid (and a few nearly valid) inputs for each harness,
made from the committed test data and fixtures with the standard library
only. The trace and policy seeds come from drrl's own writers: `run.sh seeds`
builds seed_writer.c, runs it into a directory and passes that here:
    python3 tests/fuzz/make_seeds.py [SEED_WRITER_OUTPUT_DIR]
"""
import json
import os
import struct
import glob
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SEEDS = os.path.join(HERE, 'seeds')
BPE = os.path.join(TOP, 'tests', 'data', 'gpt2-bpe')


def put(harness, name, data):
    d = os.path.join(SEEDS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def gpt2_subset(n_ids):
    """The first n_ids tokens of GPT-2 and the merges among them."""
    vocab = json.load(open(os.path.join(BPE, 'vocab.json'), encoding='utf-8'))
    keep = {k: v for k, v in vocab.items() if v < n_ids}
    merges = []
    for line in open(os.path.join(BPE, 'merges.txt'), encoding='utf-8').read().split('\n')[1:]:
        if not line:
            continue
        a, b = line.split(' ')
        if a in keep and b in keep and a + b in keep:
            merges.append(line)
    return keep, merges


def tokenizer_seeds():
    toy_v = '{"a": 0, "b": 1, "ab": 2, "aba": 3, "abab": 4}'
    toy_m = '#version: 0.2\nab a\na b\n'
    put('tokenizer_bpe', 'toy', toy_v + '\0' + toy_m)
    put('tokenizer_bpe', 'bad_merge_line', toy_v + '\0' + '#version: 0.2\na b\nab\n')
    for n in (300, 600):
        v, m = gpt2_subset(n)
        vj = json.dumps(v, ensure_ascii=False)
        put('tokenizer_bpe', 'gpt2_%d' % n, vj + '\0' + '#version: 0.2\n' + '\n'.join(m) + '\n')
        for pairs in (False, True):
            tj = {
                'version': '1.0',
                'added_tokens': [{'id': n, 'content': '<|endoftext|>', 'special': True}],
                'normalizer': None,
                'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False,
                                  'trim_offsets': True, 'use_regex': True},
                'model': {'type': 'BPE', 'dropout': None, 'unk_token': None,
                          'continuing_subword_prefix': '', 'end_of_word_suffix': '',
                          'fuse_unk': False, 'vocab': v,
                          'merges': [x.split(' ') for x in m] if pairs else m},
            }
            put('tokenizer_json', 'gpt2_%d%s' % (n, '_pairs' if pairs else ''),
                json.dumps(tj, ensure_ascii=False))
    put('tokenizer_json', 'wordpiece', '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}')
    put('tokenizer_json', 'metaspace', '{"pre_tokenizer": {"type": "Metaspace"}, '
        '"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}')
    for f in sorted(glob.glob(os.path.join(BPE, 'texts', '*.txt'))):
        name = os.path.basename(f)[:-4]
        if name not in ('empty', 'long'):
            put('tokenizer_encode', name, open(f, 'rb').read())
    put('tokenizer_encode', 'invalid_utf8', b"ab \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 "
        b"\xc0\xaf's \xf4\x90\x80\x80")


DTYPES = {'F32': ('<f', 4), 'F16': ('<e', 2), 'F64': ('<d', 8), 'I32': ('<i', 4),
          'I64': ('<q', 8), 'U8': ('<B', 1), 'I8': ('<b', 1), 'I16': ('<h', 2),
          'U16': ('<H', 2), 'U32': ('<I', 4), 'BOOL': ('<B', 1)}


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, values); BF16 values are floats."""
    header = {}
    data = b''
    for name, dtype, shape, values in tensors:
        if dtype == 'BF16':
            raw = b''.join(struct.pack('<f', v)[2:] for v in values)
        else:
            fmt, _ = DTYPES[dtype]
            raw = b''.join(struct.pack(fmt, v) for v in values)
        header[name] = {'dtype': dtype, 'shape': shape,
                        'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header['__metadata__'] = metadata
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


def safetensors_seeds():
    put('safetensors', 'f32', safetensors_bytes(
        [('w', 'F32', [2, 3], [0.5, -1.0, 2.0, 3.5, 0.0, -0.25])], {'format': 'pt'}))
    put('safetensors', 'dtypes', safetensors_bytes([
        ('a.f16', 'F16', [2], [1.0, -2.5]), ('b.bf16', 'BF16', [2], [1.0, 3.0]),
        ('c.i32', 'I32', [3], [1, -7, 2**31 - 1]), ('d.i64', 'I64', [1], [2**40]),
        ('e.u8', 'U8', [2], [0, 255]), ('f.bool', 'BOOL', [2], [0, 1]),
        ('g.f64', 'F64', [], [3.25]), ('h.empty', 'F32', [0, 3], []),
        ('i.i16', 'I16', [1], [-5]), ('j.u16', 'U16', [1], [65535]),
        ('k.u32', 'U32', [1], [4000000000]), ('l.i8', 'I8', [1], [-128])]))
    put('safetensors', 'empty_table', safetensors_bytes([]))
    put('safetensors', 'bad_offsets', safetensors_bytes(
        [('w', 'F32', [2], [1.0, 2.0])])[:-4])


def tiny_models():
    """Tiny GPT-2 and Llama directories (config, safetensors) that load."""
    rnd = random.Random(1)
    def vals(n):
        return [round(rnd.uniform(-0.5, 0.5), 3) for _ in range(n)]
    C, H, L, V, P = 4, 2, 1, 5, 4
    gcfg = json.load(open(os.path.join(TOP, 'tests/fixtures/gpt2-tiny-b/config.json')))
    gcfg.update({'n_embd': C, 'n_head': H, 'n_layer': L, 'vocab_size': V, 'n_positions': P})
    gt = [('transformer.wte.weight', [V, C]), ('transformer.wpe.weight', [P, C]),
          ('transformer.ln_f.weight', [C]), ('transformer.ln_f.bias', [C])]
    for l in range(L):
        p = 'transformer.h.%d.' % l
        gt += [(p + 'ln_1.weight', [C]), (p + 'ln_1.bias', [C]), (p + 'ln_2.weight', [C]),
               (p + 'ln_2.bias', [C]), (p + 'attn.c_attn.weight', [C, 3 * C]),
               (p + 'attn.c_attn.bias', [3 * C]), (p + 'attn.c_proj.weight', [C, C]),
               (p + 'attn.c_proj.bias', [C]), (p + 'mlp.c_fc.weight', [C, 4 * C]),
               (p + 'mlp.c_fc.bias', [4 * C]), (p + 'mlp.c_proj.weight', [4 * C, C]),
               (p + 'mlp.c_proj.bias', [C])]
    def tensors(spec, dtype):
        out = []
        for name, shape in spec:
            n = 1
            for d in shape:
                n *= d
            out.append((name, dtype, shape, vals(n)))
        return out
    gpt2 = (json.dumps(gcfg, indent=1), safetensors_bytes(tensors(gt, 'F32'), {'format': 'pt'}))
    lcfg = json.load(open(os.path.join(TOP, 'tests/fixtures/llama-tiny-b/config.json')))
    Hk, D, F = 1, 2, 6
    lcfg.update({'hidden_size': C, 'num_attention_heads': H, 'num_key_value_heads': Hk,
                 'head_dim': D, 'intermediate_size': F, 'num_hidden_layers': L,
                 'vocab_size': V, 'max_position_embeddings': 8, 'tie_word_embeddings': False})
    lt = [('model.embed_tokens.weight', [V, C]), ('model.norm.weight', [C]),
          ('lm_head.weight', [V, C])]
    for l in range(L):
        p = 'model.layers.%d.' % l
        lt += [(p + 'input_layernorm.weight', [C]), (p + 'post_attention_layernorm.weight', [C]),
               (p + 'self_attn.q_proj.weight', [H * D, C]),
               (p + 'self_attn.k_proj.weight', [Hk * D, C]),
               (p + 'self_attn.v_proj.weight', [Hk * D, C]),
               (p + 'self_attn.o_proj.weight', [C, H * D]),
               (p + 'mlp.gate_proj.weight', [F, C]), (p + 'mlp.up_proj.weight', [F, C]),
               (p + 'mlp.down_proj.weight', [C, F])]
    llama = (json.dumps(lcfg, indent=1), safetensors_bytes(tensors(lt, 'F32')))
    llama16 = (json.dumps(lcfg, indent=1), safetensors_bytes(tensors(lt, 'BF16')))
    return {'gpt2': gpt2, 'llama': llama, 'llama_bf16': llama16}


def model_seeds():
    for name, (cfg, st) in tiny_models().items():
        put('model', name, cfg.encode() + b'\0' + st)
        put('config', name, cfg)
    for f in sorted(glob.glob(os.path.join(TOP, 'tests/fixtures/*/config.json'))):
        put('config', os.path.basename(os.path.dirname(f)), open(f, 'rb').read())
    put('config', 'unknown_arch', '{"architectures": ["BertModel"], "vocab_size": 10}')


def shard_index_seeds():
    """The fixture's index as saved by transformers, a compact copy, and
    nearly valid ones (a missing tensor, a wrong or missing shard, a name
    outside the directory, a number for a file name, no weight_map)."""
    path = os.path.join(TOP, 'tests/fixtures/llama-sharded-f16/model.safetensors.index.json')
    raw = open(path, 'rb').read()
    put('shard_index', 'fixture', raw)
    idx = json.loads(raw)
    wm = idx['weight_map']
    put('shard_index', 'compact', json.dumps({'weight_map': wm}, separators=(',', ':')))
    def variant(name, edit):
        w = dict(wm)
        edit(w)
        put('shard_index', name, json.dumps({'metadata': idx['metadata'], 'weight_map': w},
                                            indent=1))
    variant('missing_tensor', lambda w: w.pop('model.norm.weight'))
    variant('wrong_shard', lambda w: w.update({'model.norm.weight':
                                               'model-00001-of-00003.safetensors'}))
    variant('missing_shard', lambda w: w.update({'model.norm.weight':
                                                 'model-00004-of-00003.safetensors'}))
    variant('outside_dir', lambda w: w.update({'model.norm.weight': '../config.json'}))
    variant('not_safetensors', lambda w: w.update({'model.norm.weight': 'config.json'}))
    variant('number', lambda w: w.update({'model.norm.weight': 3}))
    variant('extra_tensor', lambda w: w.update({'lm_head.weight':
                                                'model-00003-of-00003.safetensors'}))
    put('shard_index', 'no_weight_map', json.dumps({'metadata': idx['metadata']}))
    put('shard_index', 'weight_map_array', '{"weight_map": ["model-00001-of-00003.safetensors"]}')


def method_seeds():
    for i, spec in enumerate(['full', 'fixed:8', 'energy:0.9', 'random:2-8', 'oracle:0.01',
                              'performer:16', 'nystrom:8', 'drrl', 'drrl:policy.safetensors',
                              'fixed:0', 'energy:1.5', 'random:8-2', 'fixed:', 'bogus:1']):
        put('method', 'spec%02d' % i, spec)


def writer_seeds(d):
    for name in ('trace', 'trace_policy'):
        csv = open(os.path.join(d, name + '.csv'), 'rb').read()
        side = open(os.path.join(d, name + '.csv.json'), 'rb').read()
        put('trace_csv', name, csv + b'\0' + side)
    put('policy_file', 'policy', open(os.path.join(d, 'policy.safetensors'), 'rb').read())


if __name__ == '__main__':
    tokenizer_seeds()
    safetensors_seeds()
    model_seeds()
    shard_index_seeds()
    method_seeds()
    if len(sys.argv) > 1:
        writer_seeds(sys.argv[1])
