/**
 * The code blocks of the user docs (README.md, docs/*.md, examples/express/README.md), and
 * what the docs test does with each. A block is run unless an HTML comment on the line before
 * its fence says otherwise:
 *
 *   <!-- doc-test: skip (why: shell, output, SQL to read…) -->   not run; the reason is required
 *   <!-- doc-test: typecheck (why it cannot run here) -->        TypeScript: typechecked only
 *   <!-- doc-test: dotenv -->           VAR=value lines: read as `check --dotenv` reads a file,
 *                                       and loadStorageConfig() must accept them
 *   <!-- doc-test: with s3 postgres --> run with these services (each alone is fine too)
 *   <!-- doc-test: also s3 -->          run as it is, and once more with S3
 *   <!-- doc-test: given uploads, logger -->  a fragment: these names come from the app around it
 *   <!-- doc-test: env NAME=value -->   an environment variable the block expects
 *   <!-- doc-test: serve [probe] -->    runs until stopped: the test waits for its top level to
 *                                       finish, runs the probe, sends SIGTERM
 *   <!-- doc-test: fast-intervals -->   setInterval delays capped at 100 ms
 *
 * Directives combine with `;`. ts/js/mjs blocks without a marker are run (and ts typechecked),
 * json blocks are parsed, and a block in any other language without a marker fails the test:
 * a new block cannot escape it silently.
 */

export interface DocBlock {
  /** Path relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word, lower-cased ('' when there is none). */
  lang: string;
  code: string;
  /** The doc-test directives of the marker above the fence, as written. */
  marker?: string;
}

export type Service = 's3' | 'postgres';

export interface BlockPlan {
  block: DocBlock;
  kind: 'skip' | 'program' | 'json' | 'dotenv';
  /** Why a block is not run (skip), or not executed (typecheck). */
  reason?: string;
  typecheck: boolean;
  /** One entry per execution, with the services it gets. Empty: not executed. */
  runs: Service[][];
  given: string[];
  env: Record<string, string>;
  serve: { probe?: string } | null;
  fastIntervals: boolean;
}

const TS = new Set(['ts', 'typescript']);
const JS = new Set(['js', 'javascript', 'mjs']);
export const GIVEN_NAMES = ['storage', 'uploads', 'logger'] as const;
const MARKER = /^\s*<!--\s*doc-test:(.*?)-->\s*$/u;
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/u;

/** The fenced blocks of one Markdown file, with the marker above each, and markers above no block. */
export function parseBlocks(file: string, text: string): { blocks: DocBlock[]; strayMarkers: number[] } {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  const usedMarkers = new Set<number>();
  const markerLines: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (MARKER.test(line)) markerLines.push(i);
    const open = FENCE.exec(line);
    if (open === null) continue;
    const indent = (open[1] ?? '').length;
    const fence = open[2] ?? '```';
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const candidate = lines[j] ?? '';
      const trimmed = candidate.trimStart();
      if (trimmed.startsWith(fence[0]!.repeat(fence.length)) && trimmed.replace(/[`~]+/u, '').trim() === '') break;
      body.push(candidate.slice(Math.min(indent, candidate.length - candidate.trimStart().length)));
    }
    let above = i - 1;
    while (above >= 0 && (lines[above] ?? '').trim() === '') above--;
    const marker = above >= 0 ? MARKER.exec(lines[above] ?? '') : null;
    if (marker !== null) usedMarkers.add(above);
    blocks.push({
      file,
      line: i + 1,
      lang: (open[3] ?? '').toLowerCase(),
      code: body.join('\n') + '\n',
      ...(marker === null ? {} : { marker: (marker[1] ?? '').trim() }),
    });
    i = j;
  }
  return { blocks, strayMarkers: markerLines.filter((l) => !usedMarkers.has(l)).map((l) => l + 1) };
}

/** Split `a (x; y); b` on the semicolons outside parentheses. */
function directives(marker: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of marker) {
    if (ch === '(') depth++;
    if (ch === ')') depth = Math.max(0, depth - 1);
    if (ch === ';' && depth === 0) {
      out.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

const SERVICES = new Set<string>(['s3', 'postgres']);

/** What to do with a block, or why its marker is wrong. */
export function planBlock(block: DocBlock): BlockPlan | { error: string } {
  const where = `${block.file}:${block.line}`;
  const isTs = TS.has(block.lang);
  const isJs = JS.has(block.lang);
  const plan: BlockPlan = { block, kind: 'program', typecheck: isTs, runs: [[]], given: [], env: {}, serve: null, fastIntervals: false };
  const withServices: Service[] = [];
  const also: Service[] = [];
  for (const directive of directives(block.marker ?? '')) {
    const [word = '', ...rest] = directive.split(/\s+/u);
    const argument = directive.slice(word.length).trim();
    const reason = /^\((.+)\)$/u.exec(argument)?.[1]?.trim();
    switch (word) {
      case 'skip':
        if (reason === undefined) return { error: `${where}: "skip" needs a reason in parentheses, e.g. skip (shell)` };
        return { ...plan, kind: 'skip', reason, typecheck: false, runs: [] };
      case 'typecheck':
        if (!isTs) return { error: `${where}: "typecheck" is for ts blocks, this one is ${block.lang || 'without a language'}` };
        if (reason === undefined) return { error: `${where}: "typecheck" needs the reason it cannot run, in parentheses` };
        plan.reason = reason;
        plan.runs = [];
        break;
      case 'dotenv':
        if (block.lang !== 'sh') return { error: `${where}: "dotenv" is for sh blocks of VAR=value lines` };
        return { ...plan, kind: 'dotenv', typecheck: false, runs: [] };
      case 'with':
      case 'also':
        for (const service of rest) {
          if (!SERVICES.has(service)) return { error: `${where}: unknown service "${service}" (known: ${[...SERVICES].join(', ')})` };
          (word === 'with' ? withServices : also).push(service as Service);
        }
        break;
      case 'given':
        for (const name of argument.split(/[\s,]+/u).filter(Boolean)) {
          if (!(GIVEN_NAMES as readonly string[]).includes(name)) return { error: `${where}: nothing given as "${name}" (known: ${GIVEN_NAMES.join(', ')})` };
          plan.given.push(name);
        }
        break;
      case 'env': {
        const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/u.exec(argument);
        if (match === null) return { error: `${where}: "env" takes NAME=value` };
        plan.env[match[1]!] = match[2]!;
        break;
      }
      case 'serve':
        plan.serve = argument === '' ? {} : { probe: argument };
        break;
      case 'fast-intervals':
        plan.fastIntervals = true;
        break;
      case '':
        break;
      default:
        return { error: `${where}: unknown doc-test directive "${word}"` };
    }
  }
  if (!isTs && !isJs) {
    if (block.lang === 'json' && block.marker === undefined) return { ...plan, kind: 'json', typecheck: false, runs: [] };
    return {
      error:
        `${where}: ${block.lang === '' ? 'a block without a language' : `a ${block.lang} block`} and no doc-test marker. Make it a runnable ts/js block, or put ` +
        '<!-- doc-test: skip (the reason) --> on the line above it (see test/docs/doc-blocks.ts).',
    };
  }
  if (plan.runs.length > 0) {
    plan.runs = [withServices, ...(also.length > 0 ? [[...withServices, ...also]] : [])];
  }
  return plan;
}
