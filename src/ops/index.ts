// Every ATen operator of the installed libtorch as a typed function (generated).
export * from './generated/index.js';
