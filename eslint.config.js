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
  ...testKitRules(),
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

/**
 * The test kit (test/kit/) is what the tests and the benchmarks share; it is compiled with the
 * benchmarks, so it imports neither (nor vitest). Benchmarks import the kit, never a test file or
 * test/support/; tests never import a benchmark (what both need moves into the kit).
 */
function testKitRules() {
  const testFolders = ['**/support/*', '**/e2e/*', '**/unit/*', '**/integration/*', '**/k8s/*', '**/image/*'];
  return [
    {
      files: ['test/kit/**/*.ts'],
      rules: {
        'no-restricted-imports': ['error', {
          paths: [{ name: 'vitest', message: 'The kit runs in the benchmarks too: no test runner in it.' }],
          patterns: [
            { group: testFolders, message: 'The kit imports no test: move what it needs into test/kit/.' },
            { group: ['**/scripts/bench/*', '**/bench/*'], message: 'The kit imports no benchmark: move what both need into test/kit/.' },
          ],
        }],
      },
    },
    {
      files: ['scripts/**/*.ts'],
      rules: {
        'no-restricted-imports': ['error', {
          patterns: [{ group: [...testFolders.map((f) => `**/test/${f.slice(3)}`), '**/test/*.js'], message: 'Scripts and benchmarks import the test kit (test/kit/) only, no test file or test/support/.' }],
        }],
      },
    },
    {
      files: ['test/**/*.ts'],
      ignores: ['test/kit/**'],
      rules: {
        'no-restricted-imports': ['error', {
          patterns: [{ group: ['**/scripts/bench/*'], message: 'Tests import no benchmark: move what both need into test/kit/.' }],
        }],
      },
    },
  ];
}
