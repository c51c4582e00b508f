/// <reference types="vitest/config" />
// The storefront's build: one small bundle under /static/ (the frontend service serves
// dist/ there), and the component tests (Vitest + Testing Library in jsdom).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/static/",
  build: {
    outDir: "dist",
    assetsDir: "", // /static/<name>-<hash>.js: one path segment, like the other static files
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
