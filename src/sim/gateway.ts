/** The simulated gateway lives in ./gateway/ (one file per concern); this keeps the old import path. */
export * from './gateway/index.js';
