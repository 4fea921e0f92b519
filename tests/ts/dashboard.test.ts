import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { readOpsMetricDefinitions, registerWorkerMetrics } from '../../src/metrics/registry.js';
import { projectRoot } from '../../src/paths.js';
import { client as connect } from './helpers/db.js';

const run = promisify(execFile);
const prometheusDir = path.join(projectRoot, 'docs', 'prometheus');

/** The database's metrics, as public.ops_metric_definitions() of the test database defines them. */
async function databaseMetrics(): Promise<Set<string>> {
  const c = await connect();
  try {
    return new Set((await readOpsMetricDefinitions(c)).map((d) => `neotoma_${d.metric}`));
  } finally {
    await c.end();
  }
}

async function knownMetrics(): Promise<Set<string>> {
  const registry = new client.Registry();
  registerWorkerMetrics(registry);
  return new Set([...(await databaseMetrics()), ...registry.getMetricsAsArray().map((m) => m.name)]);
}

function namedMetrics(text: string): Set<string> {
  return new Set([...text.matchAll(/\bneotoma_(?!ops\.)[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
}

describe('docs', () => {
  it('the Grafana dashboard, the alert rules and the metrics reference only name metrics the worker exposes', async () => {
    const known = await knownMetrics();
    for (const file of ['grafana-dashboard.json', 'metrics.md', 'prometheus/neotoma-ops.rules.yml']) {
      const text = await readFile(path.join(projectRoot, 'docs', file), 'utf8');
      const named = namedMetrics(text);
      expect(named.size).toBeGreaterThan(5);
      for (const name of named) expect(known, `${file} names ${name}`).toContain(name);
    }
    // and the reference documents every metric
    const reference = await readFile(path.join(projectRoot, 'docs', 'metrics.md'), 'utf8');
    for (const name of known) {
      if (name.startsWith('neotoma_')) expect(reference, `metrics.md lacks ${name}`).toContain(`\`${name}\``);
    }
  });

  it('the process metrics are exposed beside the neotoma ones', async () => {
    const known = await knownMetrics();
    expect(known).toContain('process_cpu_seconds_total');
    expect(known).toContain('process_resident_memory_bytes');
    expect(known).toContain('nodejs_eventloop_lag_seconds');
  });

  it('database-wide series in the dashboard and the rules are aggregated with max, never summed across workers', async () => {
    const dashboard = JSON.parse(await readFile(path.join(projectRoot, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const rules = await readFile(path.join(prometheusDir, 'neotoma-ops.rules.yml'), 'utf8');
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...[...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!),
    ];
    expect(exprs.length).toBeGreaterThan(15);
    const databaseWide = await databaseMetrics();
    for (const expr of exprs) {
      // a database-wide series must be selected by scope and first reduced by max/min, never summed
      if (![...namedMetrics(expr)].some((n) => databaseWide.has(n))) continue;
      expect(expr, expr).toMatch(/scope="database"/);
      expect(expr, expr).not.toMatch(/\bsum\s*\(\s*((increase|rate)\s*\()?\s*neotoma_/);
      expect(expr, expr).toMatch(/\b(max|min)\b/);
    }
  });

  it('the alert rules pass promtool check rules', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', 'neotoma-ops.rules.yml'], { cwd: prometheusDir });
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('the alert rules pass their unit tests (promtool test rules)', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', 'neotoma-ops.rules.test.yml'], { cwd: prometheusDir });
    expect(stdout).toContain('SUCCESS');
  });
});
