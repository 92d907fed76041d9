// webpack 5 with its defaults: top-level await and `new URL(..., import.meta.url)` assets.
export default {
  mode: "production",
  target: "web",
  entry: "./app.js",
  output: { path: process.env.OUT_DIR, filename: "main.js", clean: true },
  performance: { hints: false },
};
