// Copies the browser builds of Vue and Pinia (and their licences) from
// client/node_modules into xiuxian_realtime/static/vendor/, where the page's
// import map loads them. Run after changing the pinned versions in
// package.json (`npm install && npm run vendor`), then commit the result.
// test/vendor.test.mjs checks the committed copies match node_modules.
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const clientDir = fileURLToPath(new URL('..', import.meta.url));
export const vendorDir = fileURLToPath(new URL('../../xiuxian_realtime/static/vendor/', import.meta.url));

/** [source in node_modules, file name in vendor/] */
export const FILES = [
  ['vue/dist/vue.esm-browser.prod.js', 'vue.esm-browser.prod.js'],
  ['vue/LICENSE', 'LICENSE.vue'],
  ['pinia/dist/pinia.esm-browser.js', 'pinia.esm-browser.js'],
  ['pinia/LICENSE', 'LICENSE.pinia'],
];

/** @param {string} pkg @returns {string} the installed version */
export function installedVersion(pkg) {
  return JSON.parse(readFileSync(`${clientDir}node_modules/${pkg}/package.json`, 'utf8')).version;
}

export function versionsLine() {
  return `vue ${installedVersion('vue')}, pinia ${installedVersion('pinia')}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(vendorDir, { recursive: true });
  for (const [from, to] of FILES) copyFileSync(`${clientDir}node_modules/${from}`, `${vendorDir}${to}`);
  writeFileSync(`${vendorDir}VERSIONS`, `${versionsLine()}\n`);
  console.log(`vendored ${versionsLine()} into ${vendorDir}`);
}
