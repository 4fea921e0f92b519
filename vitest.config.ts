import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** Test code that imports the package by name ('neotoma-ops', as an adapter module does) gets its source. */
export const packageFromSource = { 'neotoma-ops': fileURLToPath(new URL('./src/index.ts', import.meta.url)) };

export default defineConfig({
  resolve: { alias: packageFromSource },
  test: {
    include: ['tests/ts/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
