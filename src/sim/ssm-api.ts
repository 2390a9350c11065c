/** The simulated SSM API lives in ./ssm-api/ (protocol, session operations, instances); this keeps the old import path. */
export * from './ssm-api/index.js';
