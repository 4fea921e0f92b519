import { readFile } from 'node:fs/promises';
import path from 'node:path';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { OPS_METRIC_HELP, registerWorkerMetrics } from '../../src/metrics/registry.js';
import { projectRoot } from '../../src/paths.js';

describe('docs', () => {
  it('the Grafana dashboard and the metrics reference only name metrics that exist', async () => {
    const registry = new client.Registry();
    registerWorkerMetrics(registry);
    const known = new Set([
      ...Object.keys(OPS_METRIC_HELP).map((n) => `neotoma_${n}`),
      ...registry.getMetricsAsArray().map((m) => m.name),
    ]);
    for (const file of ['grafana-dashboard.json', 'metrics.md']) {
      const text = await readFile(path.join(projectRoot, 'docs', file), 'utf8');
      const named = new Set([...text.matchAll(/\bneotoma_(?!ops\.)[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
      expect(named.size).toBeGreaterThan(5);
      for (const name of named) expect(known, `${file} names ${name}`).toContain(name);
    }
    // and the reference documents every metric
    const reference = await readFile(path.join(projectRoot, 'docs', 'metrics.md'), 'utf8');
    for (const name of known) expect(reference, `metrics.md lacks ${name}`).toContain(`\`${name}\``);
  });
});
