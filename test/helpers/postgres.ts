export * from '../../src/sim/postgres.js';
