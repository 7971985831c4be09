import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prerenderedHelpApplies, yargsLocale } from './help-page.js';

describe('the prerendered pgdb --help', () => {
  const english = { LANG: 'en_US.UTF-8' };

  it('is for a bare --help or -h only', () => {
    assert.equal(prerenderedHelpApplies(['--help'], english, undefined), true);
    assert.equal(prerenderedHelpApplies(['-h'], english, undefined), true);
    for (const args of [[], ['help'], ['--help', '--verbose'], ['deploy', '--help'], ['--version'], ['-help'], ['--HELP']]) {
      assert.equal(prerenderedHelpApplies(args, english, undefined), false, args.join(' '));
    }
  });

  it('is for no terminal narrower than the 80 columns it is laid out for', () => {
    for (const columns of [undefined, 0, 80, 81, 200]) assert.equal(prerenderedHelpApplies(['--help'], english, columns), true, String(columns));
    for (const columns of [79, 40, 1]) assert.equal(prerenderedHelpApplies(['--help'], english, columns), false, String(columns));
  });

  it("picks the locale as yargs does, and is for English only (or C and POSIX, which yargs leaves in English)", () => {
    assert.equal(yargsLocale({}), 'en_US');
    assert.equal(yargsLocale({ LANGUAGE: 'fr', LANG: 'de_DE.UTF-8', LC_MESSAGES: 'it_IT:x', LC_ALL: 'ja_JP.eucJP' }), 'ja_JP');
    assert.equal(yargsLocale({ LANGUAGE: 'fr', LANG: 'de_DE.UTF-8', LC_MESSAGES: 'it_IT:x' }), 'it_IT');
    assert.equal(yargsLocale({ LANGUAGE: 'fr', LANG: '' }), 'fr');
    for (const env of [{}, { LANG: 'en' }, { LANG: 'en_GB.UTF-8' }, { LC_ALL: 'C' }, { LC_ALL: 'C.UTF-8' }, { LANG: 'POSIX' }, { LANG: 'de_DE', LC_ALL: 'en_US' }]) {
      assert.equal(prerenderedHelpApplies(['--help'], env, undefined), true, JSON.stringify(env));
    }
    for (const env of [{ LANG: 'de_DE.UTF-8' }, { LC_ALL: 'pirate' }, { LANG: 'pt_BR' }, { LANGUAGE: 'fr' }, { LC_ALL: 'eng' }, { LANG: 'en_US', LC_MESSAGES: 'zh_CN' }]) {
      assert.equal(prerenderedHelpApplies(['--help'], env, undefined), false, JSON.stringify(env));
    }
  });
});
