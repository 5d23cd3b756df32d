/**
 * Crash tests: run a fixture script in a child process and SIGKILL it the moment it prints
 * `AT <point>` (the line it prints just before the step under test). Point `none` runs it to
 * the end (exit 0).
 */
import { spawn } from 'node:child_process';

/** Resolves to what the child printed; rejects when it did not stop as asked. */
export function runChildKilledAt(script: string, env: Record<string, string>, point: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, ...env, NODE_NO_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString();
      if (out.includes(`AT ${point}`)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (data: Buffer) => (err += data.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const expected = point === 'none' ? code === 0 : signal === 'SIGKILL' && out.includes(`AT ${point}`);
      if (expected) resolve(out);
      else reject(new Error(`child at ${point} ended with ${code ?? signal}: ${out}\n${err.slice(-2000)}`));
    });
  });
}
