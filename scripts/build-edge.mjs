// Builds the Supabase Edge Function's module from src/edge/: one ES module (our code only; `pg` and
// `@supabase/storage-js` stay imports, which the function's deno.json maps to the same npm versions as package.json).
// Run with `npm run build:edge` before `supabase functions deploy upload-queue-processor`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const EDGE_FUNCTION_DIR = path.join(root, 'supabase', 'functions', 'upload-queue-processor');
export const EDGE_MODULE = path.join(EDGE_FUNCTION_DIR, 'processor.mjs');

/** Bundles src/edge/upload-queue-processor.ts into `outfile` (default: the function folder's processor.mjs). */
export async function buildEdgeFunction(outfile = EDGE_MODULE) {
  await build({
    entryPoints: [path.join(root, 'src', 'edge', 'upload-queue-processor.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['pg', '@supabase/storage-js', 'node:*'],
    banner: { js: '// Built from src/edge/ by scripts/build-edge.mjs; do not edit.' },
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildEdgeFunction();
  console.log(`built ${path.relative(process.cwd(), out)}`);
}
