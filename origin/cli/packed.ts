#!/usr/bin/env node
/**
 * The packed `eris`: the client's commands (push, client-config) as one JavaScript file that needs only
 * Node ≥ 22 — no node_modules, and no TypeScript for Node to strip as it starts (the project's `eris` spends
 * most of its ~0.4 s start-up there, every run: a post-build hook pays it after every build).
 * `npm run build:cli` writes it to dist/eris.mjs (scripts/build-cli.ts); docs/push.md says how runners get it.
 */
import { runProcess } from './dispatch.ts';
import { CLIENT_CONFIG_COMMAND, PUSH_COMMAND } from './client-commands.ts';

runProcess({
  commands: { push: PUSH_COMMAND, 'client-config': CLIENT_CONFIG_COMMAND },
  unknown: (cmd) => `the packed eris has push and client-config; the rest run from the project: npm run eris -- ${cmd}`,
}, process.argv.slice(2));
