// GET / serves the viewer's files with a strict CSP; other paths keep the JSON 404.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../helpers/server.ts';

describe('the viewer page', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.close());

  test('GET / is the page, with a CSP that allows no inline code', async () => {
    const res = await fetch(`${t.base}/`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^text\/html/);
    const csp = String(res.headers.get('content-security-policy'));
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/viewer.js"><\/script>/);
    assert.doesNotMatch(html, /<script>|<style|style="|\son[a-z]+="/i, 'no inline script or style');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another site');
  });

  test('the script and the stylesheet are served with their types', async () => {
    const js = await fetch(`${t.base}/viewer.js`);
    assert.equal(js.status, 200);
    assert.match(String(js.headers.get('content-type')), /javascript/);
    await js.arrayBuffer();
    const css = await fetch(`${t.base}/viewer.css`);
    assert.equal(css.status, 200);
    assert.match(String(css.headers.get('content-type')), /^text\/css/);
    await css.arrayBuffer();
  });

  test('unknown paths still get the JSON 404', async () => {
    const res = await fetch(`${t.base}/nope.html`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: string }).error, 'not_found');
  });
});
