import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderReadme } from '../../scripts/readme-config.js';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

describe('README', () => {
  it('has the configuration reference generated from the option table', () => {
    expect(renderReadme(readme)).toBe(readme);
    for (const spec of Object.values(RUN_OPTIONS)) expect(readme).toContain(`\`--${spec.flag}\``);
  });

  it('shows the two set-up commands on its first screen', () => {
    const firstScreen = readme.split('\n').slice(0, 40).join('\n');
    expect(firstScreen).toContain('npm install && npm start');
    expect(firstScreen).toContain('npm test');
  });
});
