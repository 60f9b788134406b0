/**
 * The container suite (`npm run test:container`): builds the image with podman and runs the
 * runbook inside it. One file at a time (one image, one volume name), long time limits.
 */
import base from './jest.config.js';

export default {
  ...base,
  roots: ['<rootDir>/__tests__/container'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 600000,
  maxWorkers: 1,
};
