#!/usr/bin/env node
/**
 * doorito-storage check [--dotenv FILE] [--json]
 * Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage (or an unreadable --dotenv file).
 *
 * Not `--env-file`: Node owns that flag and parses it anywhere on the command line, even after
 * the script, so it would never reach us (with a missing file Node itself exits 9).
 */
import { readFileSync } from 'node:fs';
import { parseArgs, parseEnv } from 'node:util';
import { formatReport, runCheck } from './run-check.js';

const USAGE = 'usage: doorito-storage check [--dotenv FILE] [--json]';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { dotenv: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] !== 'check' || positionals.length > 1) {
    (values.help === true ? console.log : console.error)(USAGE);
    return values.help === true ? 0 : 2;
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
  const report = await runCheck({ ...fromFile, ...process.env });
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
