// Module resolve hooks for the tests: the browser sources in
// xiuxian_realtime/static/js import 'vue' and 'pinia' as bare specifiers,
// which the page's import map resolves. Under node, resolve them from this
// npm project (client/node_modules) instead, as if imported from here.
// Used by calling `register('./static-import-map.mjs', import.meta.url)`.

const here = new URL('./', import.meta.url).href;

/**
 * @param {string} specifier
 * @param {{parentURL?: string}} context
 * @param {Function} nextResolve
 */
export async function resolve(specifier, context, nextResolve) {
  const bare = !/^(\.{0,2}\/|[a-z]+:)/i.test(specifier);
  if (bare && context.parentURL && context.parentURL.includes('/xiuxian_realtime/static/')) {
    return nextResolve(specifier, { ...context, parentURL: here });
  }
  return nextResolve(specifier, context);
}
