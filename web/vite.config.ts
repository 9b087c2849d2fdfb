import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

// dist/README.txt is committed (go:embed needs the directory to exist before
// the first build), so instead of Vite's emptyOutDir, which would delete it,
// this clears everything else before writing.
function cleanDistKeepingReadme(): Plugin {
  const out = fileURLToPath(new URL("dist", import.meta.url));
  return {
    name: "clean-dist-keeping-readme",
    apply: "build",
    buildStart() {
      let names: string[] = [];
      try {
        names = readdirSync(out);
      } catch {
        return;
      }
      for (const n of names) {
        if (n !== "README.txt") rmSync(join(out, n), { recursive: true, force: true });
      }
    },
  };
}

export default defineConfig({
  // Relative asset and API URLs: the page also works behind a reverse proxy
  // that mounts the collector under a path prefix.
  base: "./",
  plugins: [cleanDistKeepingReadme()],
  build: {
    outDir: "dist",
    emptyOutDir: false,
    target: "es2022",
    chunkSizeWarningLimit: 800,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a collector on the default address.
    proxy: { "/api": "http://127.0.0.1:8080", "/healthz": "http://127.0.0.1:8080" },
  },
});
