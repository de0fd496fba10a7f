/**
 * `eris token list` and the OIDC trust rules: read from wrangler.toml with the
 * edge's own parser — docs/oidc.md's example included — listed in the order
 * they are tried, and a rule the edge would refuse refused first here.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTrustRules, readTrustRules } from './oidc-rules.ts';
import { PROJECT_DIR } from './cli.ts';
import { eris } from '../../test/helpers/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'eris-oidc-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The project's wrangler.toml with `OIDC_TRUST = …` (TOML) under [vars]. */
function wranglerToml(name: string, oidcTrustToml: string): string {
  const file = join(dir, name);
  writeFileSync(file, readFileSync(join(PROJECT_DIR, 'wrangler.toml'), 'utf8').replace(/^\[vars\]\n/m, `[vars]\n${oidcTrustToml}\n`));
  return file;
}

const docsExample = () => /```toml\n\[vars\]\n(OIDC_TRUST = '''[\s\S]*?''')\n```/.exec(readFileSync(join(PROJECT_DIR, 'docs/oidc.md'), 'utf8'))![1]!;

describe('OIDC trust rules in eris token list', () => {
  it('reads docs/oidc.md\'s example as the edge would, and lists its rules in order', () => {
    const trust = readTrustRules(wranglerToml('docs.toml', docsExample()))!;
    expect(trust.rules.map((r) => r.name)).toEqual(['app-main', 'app-prs', 'infra-release']);
    const text = formatTrustRules(trust, 'wrangler.toml');
    expect(text.split('\n').slice(0, 3)).toEqual([
      'OIDC trust rules (OIDC_TRUST in wrangler.toml), tried in order:',
      expect.stringMatching(/^RULE +ISSUER +CLAIMS +CACHES +SCOPES +MINUTES$/),
      expect.stringMatching(/^app-main +github +repository_id=123456789 repository_owner_id=4242 ref=refs\/heads\/main +ci +read,write +15$/),
    ]);
    expect(text).toContain('  github: https://token.actions.githubusercontent.com (audience https://cache.example.com)\n');
    // A table under [vars] works as well as JSON text.
    expect(readTrustRules(wranglerToml('table.toml', `OIDC_TRUST = ${JSON.stringify(JSON.stringify(trust))}`))).toEqual(trust);
    expect(readTrustRules(join(PROJECT_DIR, 'wrangler.toml'))).toBeUndefined();
  });

  it('refuses a rule the edge would refuse, naming the file and key, before asking wrangler anything', () => {
    const file = wranglerToml('bad.toml', `OIDC_TRUST = '{"issuers":[{"name":"github","url":"https://token.actions.githubusercontent.com","audience":"a"}],"rules":[{"name":"r","issuer":"github","claims":{"ref":"refs/heads/main"},"caches":["ci"],"scopes":["write"]}]}'`);
    const r = eris(['token', 'list', '--wrangler-config', file, '--persist-to', join(dir, 'state')]);
    expect(r.status).toBe(2); // a configuration problem, as for eris serve's config
    expect(r.stderr).toMatch(new RegExp(`^eris: ${file.replace(/[.]/g, '\\.')}: OIDC_TRUST\\.rules\\[0\\]\\.claims must pin who may push`));
  });

  it('prints the rules after the tokens (none here) from a real wrangler kv list', () => {
    const r = eris(['token', 'list', '--wrangler-config', wranglerToml('good.toml', docsExample()), '--persist-to', join(dir, 'state')]);
    expect(r.stderr).toContain('no tokens\n');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OIDC trust rules \(OIDC_TRUST in \S+good\.toml\), tried in order:\nRULE .*\napp-main .*\napp-prs .*\ninfra-release .*\nissuers:\n/);
  }, 60_000);
});
