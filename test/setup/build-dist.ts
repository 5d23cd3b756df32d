/**
 * The example app imports the package by its name, i.e. the built `dist/`. Build it when it is
 * missing or older than `src/` (a fresh `npm install` builds it through `prepare`).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

export default function setup(): void {
  let built = 0;
  try {
    built = statSync(path.join(root, 'dist', 'index.js')).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= Math.max(newest(path.join(root, 'src')), statSync(path.join(root, 'tsup.config.ts')).mtimeMs)) return;
  console.log('dist/ is older than src/: building it for the example app (tsup)…');
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js'), '--silent'], { cwd: root, stdio: 'inherit' });
}
