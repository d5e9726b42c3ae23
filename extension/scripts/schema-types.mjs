// The TypeScript types of the payloads, generated from their schema files
// (kernel/rootfs_kernel/views/compare.schema.json -> src/schema.ts,
//  kernel/rootfs_kernel/views/tree.schema.json -> src/tree-schema.ts,
//  kernel/rootfs_kernel/views/limits.schema.json -> src/limits-schema.ts).
//   node scripts/schema-types.mjs          write them
//   node scripts/schema-types.mjs --check  fail if one is not what its schema gives
import { readFileSync, writeFileSync } from 'node:fs';
import { compileFromFile } from 'json-schema-to-typescript';

const pairs = [
  ['compare.schema.json', 'schema.ts'],
  ['tree.schema.json', 'tree-schema.ts'],
  ['limits.schema.json', 'limits-schema.ts']
];
let stale = false;
for (const [from, to] of pairs) {
  // Up into the kernel's package, on purpose: the schema files are the one definition.
  const schema = new URL(`../../kernel/rootfs_kernel/views/${from}`, import.meta.url);
  const out = new URL(`../src/${to}`, import.meta.url);
  const banner =
    `/* Generated from kernel/rootfs_kernel/views/${from} by\n` +
    '   scripts/schema-types.mjs (npm run schema); do not edit by hand. */';
  const ts = await compileFromFile(schema.pathname, {
    bannerComment: banner,
    additionalProperties: false,
    style: { singleQuote: true, printWidth: 100 }
  });
  if (process.argv.includes('--check')) {
    if (readFileSync(out, 'utf8') !== ts) {
      console.error(`src/${to} is stale: run \`npm run schema\` in extension/`);
      stale = true;
    } else {
      console.log(`src/${to} matches ${from}`);
    }
  } else {
    writeFileSync(out, ts);
    console.log(`wrote src/${to}`);
  }
}
if (stale) {
  process.exit(1);
}
