export * from '../../src/sim/net.js';
