/** Jest runs the TypeScript tests as ESM through ts-jest (NODE_OPTIONS=--experimental-vm-modules). */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  // The container suite builds an image and runs podman: `npm run test:container` (jest.container.config.js).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/__tests__/container/'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }] },
  testTimeout: 60000,
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/__tests__/summary-reporter.cjs'],
};
