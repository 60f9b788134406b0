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
  // One scratch folder per run and per file, removed at the end with the users and mounts in it.
  globalSetup: '<rootDir>/__tests__/setup/global-setup.mjs',
  globalTeardown: '<rootDir>/__tests__/setup/global-teardown.mjs',
  setupFilesAfterEnv: ['<rootDir>/__tests__/setup/per-file.ts'],
  // A bound for hangs, not a speed target: on a shared, busy machine one test may run many programs slowly.
  testTimeout: 300000,
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/__tests__/summary-reporter.cjs'],
};
