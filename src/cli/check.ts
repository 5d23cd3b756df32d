#!/usr/bin/env node
/**
 * doorito-storage check [--dotenv FILE] [--json] [--origin ORIGIN]...
 * Exit codes: 0 all checks passed (warnings included), 1 a check failed or asked for what the
 * server does not support, 2 bad usage (an unreadable --dotenv file, an --origin that is not one).
 *
 * Not `--env-file`: Node owns that flag and parses it anywhere on the command line, even after
 * the script, so it would never reach us (with a missing file Node itself exits 9).
 */
import { readFileSync } from 'node:fs';
import { parseArgs, parseEnv } from 'node:util';
import { formatReport, runCheck } from './run-check.js';

const USAGE = [
  'usage: doorito-storage check [--dotenv FILE] [--json] [--origin ORIGIN]...',
  '  --origin ORIGIN  also check that the bucket\'s CORS lets a browser on ORIGIN (e.g. https://app.example.com)',
  '                   upload to it directly; repeat it, or separate origins with commas, to check several',
].join('\n');

/** `https://app.example.com` as a browser sends it in `Origin`: scheme, host and port only (a trailing `/` is dropped). */
function parseOrigins(values: string[]): string[] {
  const origins = values.flatMap((v) => v.split(',')).map((v) => v.trim().replace(/\/$/u, ''));
  for (const origin of origins) {
    if (!(URL.canParse(origin) && /^https?:$/u.test(new URL(origin).protocol) && new URL(origin).origin === origin)) {
      throw new TypeError(`--origin ${JSON.stringify(origin)} is not an origin like https://app.example.com (scheme, host and port only, no path)`);
    }
  }
  return [...new Set(origins)];
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { dotenv: { type: 'string' }, json: { type: 'boolean' }, origin: { type: 'string', multiple: true }, help: { type: 'boolean' } },
    });
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] !== 'check' || positionals.length > 1) {
    (values.help === true ? console.log : console.error)(USAGE);
    return values.help === true ? 0 : 2;
  }
  let origins: string[];
  try {
    origins = parseOrigins(values.origin ?? []);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  let fromFile: Record<string, string> = {};
  if (values.dotenv !== undefined) {
    try {
      fromFile = parseEnv(readFileSync(values.dotenv, 'utf8')) as Record<string, string>;
    } catch (error) {
      const reason = (error as { code?: unknown }).code === 'ENOENT' ? 'no such file' : error instanceof Error ? error.message : String(error);
      console.error(`Could not read --dotenv ${values.dotenv}: ${reason}\n${USAGE}`);
      return 2;
    }
  }
  // Variables already set in the environment win over the file, as with Node's own --env-file.
  const report = await runCheck({ ...fromFile, ...process.env }, { origins });
  console.log(values.json === true ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  },
);
