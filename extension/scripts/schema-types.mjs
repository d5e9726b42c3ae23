// The TypeScript types of the compare payload, generated from the one schema file
// (kernel/rootfs_kernel/views/compare.schema.json) into src/schema.ts.
//   node scripts/schema-types.mjs          write src/schema.ts
//   node scripts/schema-types.mjs --check  fail if src/schema.ts is not what the schema gives
import { readFileSync, writeFileSync } from 'node:fs';
import { compileFromFile } from 'json-schema-to-typescript';

const schema = new URL('../../kernel/rootfs_kernel/views/compare.schema.json', import.meta.url);
const out = new URL('../src/schema.ts', import.meta.url);
const banner =
  '/* Generated from kernel/rootfs_kernel/views/compare.schema.json by\n' +
  '   scripts/schema-types.mjs (npm run schema); do not edit by hand. */';
const ts = await compileFromFile(schema.pathname, {
  bannerComment: banner,
  additionalProperties: false,
  style: { singleQuote: true, printWidth: 100 }
});
if (process.argv.includes('--check')) {
  if (readFileSync(out, 'utf8') !== ts) {
    console.error('src/schema.ts is stale: run `npm run schema` in extension/');
    process.exit(1);
  }
  console.log('src/schema.ts matches the schema');
} else {
  writeFileSync(out, ts);
  console.log('wrote src/schema.ts');
}
