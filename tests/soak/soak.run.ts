import { describe, expect, it } from 'vitest';
import { formatReport, runSoak } from '../ts/helpers/soak/index.js';

// `npm run soak`: the long soak, SOAK_SECONDS of load (default 120), then the invariants; prints its figures.
const seconds = Number(process.env.SOAK_SECONDS ?? 120);

describe(`soak (${seconds} s)`, () => {
  it('holds every invariant', async () => {
    if (!Number.isFinite(seconds) || seconds < 5) throw new Error(`SOAK_SECONDS must be a number of at least 5, got "${process.env.SOAK_SECONDS}"`);
    const report = await runSoak({ seconds, log: (l) => process.stderr.write(`${l}\n`) });
    process.stdout.write(`\n${formatReport(report)}\n\n`);
    for (const inv of report.invariants) expect.soft(inv.held, `${inv.name}: ${inv.detail}`).toBe(true);
  }, (seconds + 180) * 1000);
});
