import { defineConfig } from 'vitest/config';

// `npm run soak` only: not part of `npm test` (which runs tests/ts/soak.test.ts, the 20-second version).
export default defineConfig({
  test: {
    include: ['tests/soak/*.run.ts'],
    pool: 'forks',
    hookTimeout: 120_000,
  },
});
