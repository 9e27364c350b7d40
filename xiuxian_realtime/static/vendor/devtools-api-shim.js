// Stands in for '@vue/devtools-api' in the browser. pinia.esm-browser.js
// imports `setupDevtoolsPlugin` from it to register its Vue Devtools panel;
// the real package (and the devtools kit it pulls in) is not vendored, so
// the panel is simply not registered. Not a copy of any upstream code.
export function setupDevtoolsPlugin() {}
