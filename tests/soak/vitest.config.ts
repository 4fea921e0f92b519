import { defineConfig } from 'vitest/config';
import { packageFromSource } from '../../vitest.config.js';

// `npm run soak` only: not part of `npm test` (which runs tests/ts/soak.test.ts, the 20-second version).
export default defineConfig({
  resolve: { alias: packageFromSource },
  test: {
    include: ['tests/soak/*.run.ts'],
    pool: 'forks',
    hookTimeout: 120_000,
  },
});
