#!/usr/bin/env node
// Build dist/ only when it is missing or older than src/ (or the build config): what
// `npm run example` and the integration tests' setup run before using the package by its name.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

const mtime = (file) => {
  try {
    return statSync(path.join(root, file)).mtimeMs;
  } catch {
    return 0;
  }
};

// The oldest output stands for the build: every entry point, and the command.
const built = Math.min(...['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/bin/doorito-storage.js'].map(mtime));
const sources = Math.max(newest(path.join(root, 'src')), mtime('tsup.config.ts'), mtime('package.json'));
if (built < sources) {
  const started = Date.now();
  console.error(built === 0 ? 'dist/ is missing: building it (tsup)…' : 'src/ changed since the last build: rebuilding dist/ (tsup)…');
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js')], { cwd: root, stdio: 'inherit' });
  console.error(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
