// Runs a wasm32-wasip1 program (a `cargo test` binary) under Node's built-in
// WASI, so the core's tests also pass in the ISA the filter ships in.
// Usage (cargo does this): node scripts/wasi-run.mjs target/.../x.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [wasmPath, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [wasmPath, ...args],
  env: process.env,
  // Tests read the captured MCP exchanges beside the repo by absolute path.
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
