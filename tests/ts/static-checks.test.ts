// The field's own static checks: squawk over the migrations (the project's lock rules, .squawk.toml), every
// finding fixed or explained. (plpgsql_check runs as tests/pgtap/static_plpgsql_check.sql; deno check and lint of
// the Edge Function in edge-function-deno.test.ts.)
import { describe, expect, it } from 'vitest';
import { lintMigrations } from '../../scripts/lint-migrations.mjs';

describe('squawk over the migrations', () => {
  it('finds nothing that is not explained', async () => {
    const r = await lintMigrations();
    expect(r.findings).toBeGreaterThan(0); // it did look: the down sections drop tables by design
    expect(r.unexplained).toEqual([]);
  }, 60_000);
});
