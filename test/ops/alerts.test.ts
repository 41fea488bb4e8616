// config/alerts.yml: promtool accepts the rules and the Prometheus config that loads them, the unit
// tests of config/alerts.test.yml pass, and they notice when an alert never fires or always fires.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'yaml';
import { ROOT } from '../helpers/process.ts';
import { ALERT_NAMES as ALERTS, missingTool } from '../helpers/prometheus.ts';

const CONFIG = join(ROOT, 'config');

function promtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

interface Rule {
  alert: string;
  expr: string;
}

const rulesText = readFileSync(join(CONFIG, 'alerts.yml'), 'utf8');
const rules = (parse(rulesText) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

describe('config/alerts.yml', { skip: missingTool('promtool') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-alerts-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('has the five alerts the issue asks for', () => {
    assert.deepEqual(
      rules.map((r) => r.alert),
      ALERTS,
    );
  });

  test('promtool check rules accepts the rules', () => {
    const r = promtool(['check', 'rules', join(CONFIG, 'alerts.yml')]);
    assert.equal(r.status, 0, r.output);
  });

  test('promtool check config accepts config/prometheus.yml and loads the rules through it', () => {
    const r = promtool(['check', 'config', join(CONFIG, 'prometheus.yml')]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  test('promtool test rules: the unit tests in config/alerts.test.yml pass', () => {
    const r = promtool(['test', 'rules', join(CONFIG, 'alerts.test.yml')]);
    assert.equal(r.status, 0, r.output);
  });

  /** Runs config/alerts.test.yml against a copy of the rules with one alert's expr replaced. */
  function testWithExpr(alert: string, expr: string): { status: number | null; output: string } {
    const mutated = parse(rulesText) as { groups: { rules: Rule[] }[] };
    const rule = mutated.groups.flatMap((g) => g.rules).find((r) => r.alert === alert);
    assert.ok(rule, alert);
    rule.expr = expr;
    writeFileSync(join(dir, 'alerts.yml'), JSON.stringify(mutated));
    copyFileSync(join(CONFIG, 'alerts.test.yml'), join(dir, 'alerts.test.yml'));
    return promtool(['test', 'rules', join(dir, 'alerts.test.yml')]);
  }

  for (const alert of ALERTS) {
    test(`the unit tests fail when ${alert} never fires, and when it always fires`, () => {
      const never = testWithExpr(alert, 'vector(1) == 0');
      assert.notEqual(never.status, 0, `${alert} never firing went unnoticed`);
      assert.match(never.output, new RegExp(alert));
      const always = testWithExpr(alert, 'up >= 0 or sse_broker_up >= 0 or vector(1)');
      assert.notEqual(always.status, 0, `${alert} always firing went unnoticed`);
      assert.match(always.output, new RegExp(alert));
    });
  }
});
