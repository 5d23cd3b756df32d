#!/usr/bin/env node
/**
 * doorito-storage check [--env-file FILE] [--json]
 * Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, parseEnv } from 'node:util';
import { formatReport, runCheck } from './run-check.js';

const USAGE = 'usage: doorito-storage check [--env-file FILE] [--json]';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { 'env-file': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
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
  if (values['env-file'] !== undefined) {
    try {
      fromFile = parseEnv(readFileSync(values['env-file'], 'utf8')) as Record<string, string>;
    } catch (error) {
      console.error(`Could not read --env-file ${values['env-file']}: ${error instanceof Error ? error.message : String(error)}`);
      return 2;
    }
  }
  // Variables already set in the environment win over the file, as with Node's --env-file.
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
