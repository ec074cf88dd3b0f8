#!/usr/bin/env node
// Launches the built CLI (dist/cli/main.js, compiled from src/cli/main.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  console.error(`keel: the CLI is not built (${fileURLToPath(entry)} is missing).\nkeel: run scripts/bootstrap.sh in ${root} (or \`npx tsc -p tsconfig.json\` if libtorch and the addon are already set up).`);
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
