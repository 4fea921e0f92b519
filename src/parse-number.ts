import { OperationalError } from './errors.js';

/** What a number setting or option accepts: at least `min`, and a whole number unless `whole` is false. */
export interface NumberRule {
  min: number;
  whole?: boolean;
}

const AT_LEAST_ONE: NumberRule = { min: 1 };

/** The rule in words, for messages: "a whole number of at least 1". */
export function describeNumberRule(rule: NumberRule = AT_LEAST_ONE): string {
  return `${rule.whole === false ? 'a number' : 'a whole number'} of at least ${rule.min}`;
}

/** `text` read as a number that keeps `rule` (whole, at least 1 by default), or undefined when it does not. */
export function parseNumber(text: string, rule: NumberRule = AT_LEAST_ONE): number | undefined {
  const trimmed = text.trim();
  const n = trimmed === '' ? NaN : Number(trimmed);
  return Number.isFinite(n) && n >= rule.min && (rule.whole === false || Number.isInteger(n)) ? n : undefined;
}

/**
 * The environment variable `name` read by `rule`; `fallback` when it is unset or empty. A value that breaks the
 * rule is an OperationalError naming the variable, the rule and the value.
 */
export function numberFromEnv(env: Record<string, string | undefined>, name: string, fallback: number, rule: NumberRule = AT_LEAST_ONE): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = parseNumber(raw, rule);
  if (n === undefined) throw new OperationalError(`${name} must be ${describeNumberRule(rule)}, got "${raw}".`);
  return n;
}
