// Property-based tests (fast-check) of the pure SQL helpers against independent TypeScript models:
// public.billing_period_bounds(anchor, at) over random anchors 1..31 and instants 1970..2100 (with extra
// weight on period boundaries, leap days and America/New_York DST transitions), evaluated with the session
// TimeZone set to America/New_York and to UTC; and public.upload_retry_delay(n). Every run of a property
// sends its whole batch of cases in one SQL round-trip.
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client } from './helpers/db.js';

const DAY = 86_400_000;
const MIN_T = Date.UTC(1970, 0, 1);
const MAX_T = Date.UTC(2100, 11, 31, 23, 59, 59, 999);

// ---- independent model of the billing period ----------------------------------------------------------
function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/** Start of the period that begins in (year, month): the anchor day clamped to the month's length, 00:00 UTC. */
function periodStartIn(anchor: number, year: number, month: number): number {
  const y = year + Math.floor(month / 12);
  const m = ((month % 12) + 12) % 12;
  return Date.UTC(y, m, Math.min(anchor, daysInMonth(y, m)));
}

function modelBounds(anchor: number, t: number): { start: number; end: number } {
  const d = new Date(t);
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth();
  if (t < periodStartIn(anchor, y, m)) {
    m -= 1;
    if (m < 0) {
      m = 11;
      y -= 1;
    }
  }
  return { start: periodStartIn(anchor, y, m), end: periodStartIn(anchor, y, m + 1) };
}

// ---- instants worth testing ---------------------------------------------------------------------------
/** n-th (1-based) Sunday of a month, or the last one when n = -1, as a UTC day start. */
function sunday(year: number, month: number, n: number): number {
  if (n > 0) {
    const first = new Date(Date.UTC(year, month, 1)).getUTCDay();
    return Date.UTC(year, month, 1 + ((7 - first) % 7) + (n - 1) * 7);
  }
  const lastDay = daysInMonth(year, month);
  const last = new Date(Date.UTC(year, month, lastDay)).getUTCDay();
  return Date.UTC(year, month, lastDay - last);
}

/** America/New_York DST changes of a year (2:00 local): US rules since 2007, 1987-2006, and 1976-1986. */
function dstTransitions(year: number): number[] {
  if (year >= 2007) return [sunday(year, 2, 2) + 7 * 3_600_000, sunday(year, 10, 1) + 6 * 3_600_000];
  if (year >= 1987) return [sunday(year, 3, 1) + 7 * 3_600_000, sunday(year, 9, -1) + 6 * 3_600_000];
  return [sunday(year, 3, -1) + 7 * 3_600_000, sunday(year, 9, -1) + 6 * 3_600_000];
}

const LEAP_YEARS = Array.from({ length: 131 }, (_, i) => 1970 + i).filter(
  (y) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0,
);

const anchorArb = fc.integer({ min: 1, max: 31 });
const yearArb = fc.integer({ min: 1970, max: 2100 });
const nearArb = fc.integer({ min: -2 * DAY, max: 2 * DAY });
const tinyArb = fc.constantFrom(-1, 0, 1, -3_600_000, 3_600_000, -5 * 3_600_000, 5 * 3_600_000);

const clamp = (t: number): number => Math.min(MAX_T, Math.max(MIN_T, t));

/** (anchor, instant ms) pairs: uniform instants, period boundaries, leap days, DST transitions. */
const caseArb: fc.Arbitrary<[number, number]> = fc.oneof(
  fc.tuple(anchorArb, fc.integer({ min: MIN_T, max: MAX_T })),
  // the anchor day of some month, at and around midnight UTC (and the clamp to a short month)
  fc.tuple(anchorArb, yearArb, fc.integer({ min: 0, max: 11 }), tinyArb).map(
    ([a, y, m, d]): [number, number] => [a, clamp(periodStartIn(a, y, m) + d)],
  ),
  // around Feb 28/29 and Mar 1 of leap years, with month-end anchors weighted up
  fc.tuple(fc.oneof(anchorArb, fc.integer({ min: 28, max: 31 })), fc.constantFrom(...LEAP_YEARS), nearArb).map(
    ([a, y, d]): [number, number] => [a, clamp(Date.UTC(y, 1, 29) + d)],
  ),
  // around the America/New_York DST changes
  fc.tuple(anchorArb, yearArb, fc.boolean(), nearArb).map(([a, y, spring, d]): [number, number] => {
    const [s, f] = dstTransitions(y);
    return [a, clamp((spring ? s! : f!) + d)];
  }),
);

let db: pg.Client;

beforeAll(async () => {
  db = await client();
});
afterAll(async () => {
  await db?.end();
});

interface BoundsRow {
  i: string;
  start_ms: string;
  end_ms: string;
}

async function sqlBounds(cases: [number, number][], timeZone: string): Promise<{ start: number; end: number }[]> {
  await db.query(`SELECT set_config('TimeZone', $1, false)`, [timeZone]);
  const { rows } = await db.query<BoundsRow>(
    `SELECT u.i, (extract(epoch FROM b.period_start) * 1000)::bigint AS start_ms,
            (extract(epoch FROM b.period_end) * 1000)::bigint AS end_ms
       FROM unnest($1::integer[], $2::timestamptz[]) WITH ORDINALITY AS u(anchor, at, i)
      CROSS JOIN LATERAL public.billing_period_bounds(u.anchor, u.at) AS b
      ORDER BY u.i`,
    [cases.map(([a]) => a), cases.map(([, t]) => new Date(t).toISOString())],
  );
  expect(rows).toHaveLength(cases.length);
  return rows.map((r) => ({ start: Number(r.start_ms), end: Number(r.end_ms) }));
}

describe('billing_period_bounds against an independent model', () => {
  it('the model itself agrees with the documented examples', () => {
    const iso = (t: number): string => new Date(t).toISOString().slice(0, 10);
    const b = (a: number, s: string): string => {
      const r = modelBounds(a, Date.parse(s));
      return `${iso(r.start)}..${iso(r.end)}`;
    };
    expect(b(31, '2024-02-10T00:00:00Z')).toBe('2024-01-31..2024-02-29');
    expect(b(31, '2023-02-28T00:00:00Z')).toBe('2023-02-28..2023-03-31');
    expect(b(31, '2024-04-30T12:00:00Z')).toBe('2024-04-30..2024-05-31');
    expect(b(15, '2024-03-14T23:59:59.999Z')).toBe('2024-02-15..2024-03-15');
    expect(b(1, '2100-02-28T23:00:00Z')).toBe('2100-02-01..2100-03-01');
    expect(b(29, '2100-03-01T00:00:00Z')).toBe('2100-02-28..2100-03-29');
  });

  it('equals the model for 4,000 random anchors and instants, whatever the session TimeZone', async () => {
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: 1000, maxLength: 1000 }), async (cases) => {
        const expected = cases.map(([a, t]) => modelBounds(a, t));
        const ny = await sqlBounds(cases, 'America/New_York');
        const utc = await sqlBounds(cases, 'UTC');
        checked += cases.length;
        // report the first differing case rather than the whole batch
        const firstBad = cases.findIndex((_, i) =>
          ny[i]!.start !== expected[i]!.start || ny[i]!.end !== expected[i]!.end ||
          utc[i]!.start !== expected[i]!.start || utc[i]!.end !== expected[i]!.end);
        if (firstBad >= 0) {
          const [a, t] = cases[firstBad]!;
          const show = (r: { start: number; end: number }): string =>
            `${new Date(r.start).toISOString()}..${new Date(r.end).toISOString()}`;
          throw new Error(
            `anchor ${a}, at ${new Date(t).toISOString()}: model ${show(expected[firstBad]!)}, ` +
              `SQL (New York) ${show(ny[firstBad]!)}, SQL (UTC) ${show(utc[firstBad]!)}`,
          );
        }
        // the model's own invariants hold too (a wrong model would not hide behind an equally wrong SQL)
        for (let i = 0; i < cases.length; i += 1) {
          const [, t] = cases[i]!;
          const r = expected[i]!;
          if (!(r.start <= t && t < r.end && r.end - r.start >= 28 * DAY && r.end - r.start <= 31 * DAY)) {
            throw new Error(`model out of bounds for case ${i}`);
          }
        }
      }),
      { numRuns: 4, endOnFailure: true },
    );
    expect(checked).toBeGreaterThanOrEqual(4000);
    await db.query(`RESET TimeZone`);
  });
});

describe('upload_retry_delay', () => {
  it('for retries 1..5 is 30 s · 2^(n−1) plus at most 10 % jitter, never over 10 minutes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1000, maxLength: 1000 }), async (ns) => {
        const { rows } = await db.query<{ n: number; secs: number }>(
          `SELECT n, extract(epoch FROM public.upload_retry_delay(n))::float8 AS secs
             FROM unnest($1::integer[]) WITH ORDINALITY AS u(n, i) ORDER BY i`,
          [ns],
        );
        expect(rows).toHaveLength(ns.length);
        for (const { n, secs } of rows) {
          const baseSecs = 30 * 2 ** (n - 1);
          if (!(secs >= baseSecs && secs <= baseSecs * 1.1 && secs <= 600)) {
            throw new Error(`upload_retry_delay(${n}) = ${secs} s, outside [${baseSecs}, ${baseSecs * 1.1}] or over 600`);
          }
        }
      }),
      { numRuns: 3, endOnFailure: true },
    );
  });

  it('jitters: repeated calls for the same retry spread over the range', async () => {
    const { rows } = await db.query<{ n: number; distinct: number; lo: number; hi: number }>(
      `SELECT n, count(DISTINCT d)::int AS distinct,
              min(extract(epoch FROM d))::float8 AS lo, max(extract(epoch FROM d))::float8 AS hi
         FROM (SELECT n, public.upload_retry_delay(n) AS d
                 FROM generate_series(1, 5) AS n CROSS JOIN generate_series(1, 200) AS k) x
        GROUP BY n ORDER BY n`,
    );
    for (const r of rows) {
      const baseSecs = 30 * 2 ** (r.n - 1);
      expect(r.distinct).toBeGreaterThan(100);
      expect(r.hi - r.lo).toBeGreaterThan(baseSecs * 0.05);
    }
    expect(rows.map((r) => r.n)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses any retry number outside 1..5 (and NULL) with 22023', async () => {
    await db.query(`CREATE OR REPLACE FUNCTION pg_temp.retry_delay_sqlstate(p integer) RETURNS text
                      LANGUAGE plpgsql AS $$
                    BEGIN
                      PERFORM public.upload_retry_delay(p);
                      RETURN 'ok';
                    EXCEPTION WHEN OTHERS THEN
                      RETURN SQLSTATE;
                    END $$`);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 6 }), fc.constant(null)), {
          minLength: 500,
          maxLength: 500,
        }),
        async (ns) => {
          const { rows } = await db.query<{ n: number | null; state: string }>(
            `SELECT n, pg_temp.retry_delay_sqlstate(n) AS state FROM unnest($1::integer[]) AS u(n)`,
            [ns],
          );
          const wrong = rows.filter((r) => r.state !== '22023');
          if (wrong.length > 0) throw new Error(`not 22023: ${JSON.stringify(wrong.slice(0, 5))}`);
        },
      ),
      { numRuns: 3, endOnFailure: true },
    );
  });
});
