/** The simulated agent lives in ./agent/ (one file per SPEC concern); this keeps the old import path. */
export * from './agent/index.js';
