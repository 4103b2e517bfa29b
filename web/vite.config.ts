import { defineConfig } from "vite";

// A static bundle: `dist/` is what S3/CloudFront (or `make dev`) serves, with the API's URL
// read at run time from `config.json` beside it, never baked in.
export default defineConfig({
  base: "./",
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, reportCompressedSize: true },
});
