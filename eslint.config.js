// ESLint flat config. The restricted-imports blocks keep I/O out of the pure core
// (machines, risk, approval policy, portfolio, rule engine, card renderer) and keep venue
// libraries inside adapters and integrations.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const ioModules = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'http', 'node:http', 'https', 'node:https',
  'net', 'node:net', 'child_process', 'node:child_process', 'express', 'lowdb', 'lowdb/node',
  'ccxt', 'winston', 'node-telegram-bot-api', 'undici',
];
const ioPatterns = ['**/persistence/*', '**/journal/*', '**/logging', '**/execution/*', '**/integrations/*', '**/notifications/*', '**/event-router/*'];
const venueLibraries = ['ccxt', 'node-telegram-bot-api'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'test/support/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // The console's script runs in the browser as it is (no build step).
  { files: ['src/event-router/console/*.js'], languageOptions: { sourceType: 'script', globals: { ...globals.browser } } },
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': ['error', { paths: venueLibraries.map((name) => ({ name, message: 'venue libraries belong in src/execution or src/integrations adapters' })) }],
    },
  },
  {
    files: ['src/execution/**', 'src/integrations/**', 'src/notifications/**', 'src/context/**', 'src/telegram/**', 'src/main.ts', 'test/**', 'bench/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Runtime must not depend on the HTTP edge (issue 9). This block replaces the global
    // no-restricted-imports options for these files, so it repeats the venue-library paths.
    files: ['src/runtime/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: venueLibraries.map((name) => ({ name, message: 'venue libraries belong in src/execution or src/integrations adapters' })),
        patterns: [{ group: ['**/event-router/*', '**/event-router'], message: 'runtime must not depend on the HTTP edge (src/event-router); move shared types and rules to src/ or src/proposal/' }],
      }],
    },
  },
  {
    files: ['machines/**', 'src/risk/**', 'src/approval/policy.ts', 'src/portfolio/**', 'src/proposal/rule-engine.ts', 'src/proposal/card-renderer.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ioModules.map((name) => ({ name, message: 'pure core: no I/O here; inject it from the composition root' })),
        patterns: [{ group: ioPatterns, message: 'pure core: depend on interfaces, not on I/O modules' }],
      }],
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
);
