// The dashboard's build: one hashed JS and CSS bundle under dist/assets (served by the api with
// `Cache-Control: immutable`) and dist/index.html (served `no-cache`). No inline script or
// module preload polyfill, so the page runs under the api's CSP (`script-src 'self'`).
import { defineConfig } from "vite";

export default defineConfig({
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
  server: {
    // `npm run dev` against a local api (scripts/demo): the REST API and socket.io.
    proxy: {
      "/api": "http://127.0.0.1:8081",
      "/socket.io": { target: "http://127.0.0.1:8081", ws: true },
    },
  },
});
