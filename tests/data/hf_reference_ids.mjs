// hf_reference_ids.mjs LIBDIR TOKDIR TEXT OUT: reference ids of TEXT with
// Hugging Face's JavaScript tokenizers (@huggingface/tokenizers, unpacked in
// LIBDIR) for the tokenizer.json + tokenizer_config.json in TOKDIR.
// Writes OUT.lines (the ids of each line of TEXT, without its newline, one
// line each) and OUT.ids (the ids of the whole file), ids separated by
// single spaces, no special tokens added. Run by fetch_hf_tokenizers.sh.
// Fails when a line holds an added token's text (HF would match it as that
// token; drrl encodes such text as plain text) or when the text is not
// valid UTF-8 (HF reads strings).
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [libdir, tokdir, textPath, out] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(path.join(libdir, 'dist/tokenizers.mjs')).href);
const tj = JSON.parse(fs.readFileSync(path.join(tokdir, 'tokenizer.json'), 'utf8'));
const tc = JSON.parse(fs.readFileSync(path.join(tokdir, 'tokenizer_config.json'), 'utf8'));
const tok = new Tokenizer(tj, tc);

const raw = fs.readFileSync(textPath);
const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
for (const a of tj.added_tokens || [])
    if (text.includes(a.content))
        throw new Error(`${textPath}: holds the added token ${JSON.stringify(a.content)}`);

const encode = (s) => tok.encode(s, { add_special_tokens: false }).ids;
const lines = text.split('\n');
if (lines.length > 0 && lines[lines.length - 1] === '')
    lines.pop();
fs.writeFileSync(`${out}.lines`, lines.map((l) => encode(l).join(' ') + '\n').join(''));
fs.writeFileSync(`${out}.ids`, encode(text).join(' ') + '\n');
