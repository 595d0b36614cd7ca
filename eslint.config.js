// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'var/**', 'bench/out/**', '.cache/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...houseRules(),
);

/**
 * The house: domain folders hold the logic and are wired by main.ts and the commands; they never
 * import a command, the option table, or the wiring (arrows point down only). util/ is the floor;
 * observability/ sits below lifecycle/ (whose HTTP routes use its server).
 */
function houseRules() {
  const domain = [
    { group: ['**/commands/*'], message: 'Domain folders import no command code: move what both need into the domain folder.' },
    { group: ['**/config/*'], message: 'Domain folders import no config/: take the values as options (config/ imports the domain, not the other way).' },
    { group: ['**/main.js', '**/cli.js'], message: 'Only the commands import the wiring.' },
  ];
  const restrict = (files, patterns) => ({ files, rules: { 'no-restricted-imports': ['error', { patterns }] } });
  return [
    restrict(['agent/{spark,watch,store,writeback,serve,lifecycle}/**/*.ts'], domain),
    restrict(['agent/observability/**/*.ts'], [...domain, { group: ['**/lifecycle/*'], message: 'observability/ imports nothing from lifecycle/ (lifecycle/ uses the HTTP server).' }]),
    restrict(['agent/util/**/*.ts'], [{ group: ['../*', '!../util/*'], message: 'util/ imports no other folder of the agent.' }]),
  ];
}
