// The vendored browser builds are exact copies of the pinned npm packages, and
// everything the page's import map points at exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { FILES, clientDir, vendorDir, versionsLine } from '../scripts/vendor.mjs';

test('vendor/ holds the pinned versions of vue and pinia (run `npm run vendor` after an upgrade)', () => {
  for (const [from, to] of FILES) {
    assert.ok(
      readFileSync(`${clientDir}node_modules/${from}`).equals(readFileSync(`${vendorDir}${to}`)),
      `${to} differs from node_modules/${from}`,
    );
  }
  assert.equal(readFileSync(`${vendorDir}VERSIONS`, 'utf8').trim(), versionsLine());
});

test("the import map of index.html resolves every bare import of the vendored and client modules", () => {
  const staticDir = new URL('../../xiuxian_realtime/static/', import.meta.url);
  const html = readFileSync(new URL('index.html', staticDir), 'utf8');
  const map = JSON.parse(html.match(/<script type="importmap">([\s\S]*?)<\/script>/)[1]).imports;
  const bare = new Set();
  for (const f of ['vendor/pinia.esm-browser.js', 'vendor/vue.esm-browser.prod.js', 'js/useWebSocket.js', 'js/websocket.js', 'js/demo.js']) {
    const src = readFileSync(new URL(f, staticDir), 'utf8');
    for (const m of src.matchAll(/(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm)) {
      if (!/^(\.{0,2}\/|[a-z]+:)/.test(m[1])) bare.add(m[1]);
    }
  }
  assert.deepEqual([...bare].sort(), ['@vue/devtools-api', 'pinia', 'vue']);
  for (const name of bare) {
    assert.ok(map[name], `import map lacks ${name}`);
    assert.match(map[name], /^\/static\//);
    assert.ok(existsSync(new URL(map[name].replace(/^\/static\//, ''), staticDir)), `${map[name]} missing`);
  }
});
