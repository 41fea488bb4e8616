// GET / serves the console's files with a strict CSP (the parser's modules from the installed
// package, the favicon); other paths keep the JSON 404.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../helpers/server.ts';

describe('the console page', () => {
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
    assert.match(html, /<script type="module" src="\/js\/main.js"><\/script>/);
    assert.match(html, /<link rel="icon" href="\/favicon.svg" type="image\/svg\+xml">/);
    assert.doesNotMatch(html, /<script>|<style|style="|\son[a-z]+="/i, 'no inline script or style');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another site');
  });

  test('the scripts, the stylesheet and the favicons are served with their types', async () => {
    const types: [string, RegExp][] = [
      ['/js/main.js', /javascript/],
      ['/js/stream.js', /javascript/],
      ['/js/sse-parser.js', /javascript/],
      ['/console.css', /^text\/css/],
      ['/favicon.svg', /^image\/svg\+xml/],
      ['/favicon.ico', /^image\//],
      // eventsource-parser, as the client library has it installed
      ['/vendor/eventsource-parser/index.js', /javascript/],
      ['/vendor/eventsource-parser/parse.js', /javascript/],
      ['/vendor/eventsource-parser/errors.js', /javascript/],
    ];
    for (const [path, type] of types) {
      const res = await fetch(`${t.base}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(String(res.headers.get('content-type')), type, path);
      assert.match(String(res.headers.get('content-security-policy')), /default-src 'none'/, path);
      await res.arrayBuffer();
    }
    const parser = await (await fetch(`${t.base}/vendor/eventsource-parser/index.js`)).text();
    assert.match(parser, /export \{ createParser \} from '\.\/parse\.js'/);
  });

  test('nothing else of the package, and no script but the same-origin ones', async () => {
    for (const path of [
      '/vendor/eventsource-parser/package.json',
      '/vendor/eventsource-parser/stream.js',
      '/vendor/eventsource-parser/../package.json',
      '/vendor/other/index.js',
    ]) {
      const res = await fetch(`${t.base}${path}`);
      assert.equal(res.status, 404, path);
      await res.arrayBuffer();
    }
    const main = await (await fetch(`${t.base}/js/main.js`)).text();
    assert.doesNotMatch(main, /https?:\/\//, 'no script from another site');
  });

  test('unknown paths still get the JSON 404', async () => {
    const res = await fetch(`${t.base}/nope.html`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: string }).error, 'not_found');
  });
});
