// Loads a program's light bundle, dist/bundle/<tool>.cjs (scripts/bundle.mjs), compiled from the
// V8 code cache that the build stored beside it (<tool>.cjs.cache): parsing and compiling the
// bundle is the largest share of a light command's start-up left over `node -e 0` (README
// "Benchmarks"). The cache is only read, never written here: it is made by the build (the image
// makes its own, with its own Node.js), in dist/, not in a shared or user-writable folder that a
// root shell would then run code from.
//
// A cache that does not fit is not used, and the bundle compiles as plain source:
// - V8 rejects one made by another Node.js or V8 version or under other V8 flags;
// - V8 checks only the source's length and, in release builds, no checksum of the cache: a
//   flipped byte crashes the process (seen: SIGSEGV) or runs wrong code. So the cache file
//   carries the exact source it was made from and the cache twice; both are compared byte for
//   byte (a memcmp, where a checksum computed in JavaScript costs about what the cache saves);
// - a cache is code (V8 runs what it holds, whatever source it is given), so it is trusted no more
//   than the bundle: only a regular file of the bundle's owner that no one may write who may not
//   write the bundle (a root shell would otherwise run another user's code), opened without
//   blocking (a FIFO) and of a bounded size (a symlink to /dev/zero).
'use strict';
const { closeSync, constants, fstatSync, openSync, readFileSync, readSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const MAGIC = Buffer.from('l2ops v8 code cache 1\n');
const HEADER = MAGIC.length + 8;

/** Node's CommonJS wrapper, so the bundle sees exports, require, module, __filename, __dirname. */
function compile(file, source, cachedData) {
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
}

/** The cache file's contents: MAGIC, the source's and the cache's byte lengths, the source, the cache twice. */
function encodeCache(sourceBytes, cache) {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(sourceBytes.length, 0);
  lengths.writeUInt32LE(cache.length, 4);
  return Buffer.concat([MAGIC, lengths, sourceBytes, cache, cache]);
}

/** The cache in `data` when it is whole and made from exactly `sourceBytes`; undefined otherwise. */
function decodeCache(data, sourceBytes) {
  if (data.length < HEADER || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const sourceLength = data.readUInt32LE(MAGIC.length);
  const cacheLength = data.readUInt32LE(MAGIC.length + 4);
  if (sourceLength !== sourceBytes.length || cacheLength === 0 || data.length !== HEADER + sourceLength + 2 * cacheLength) return undefined;
  const cacheAt = HEADER + sourceLength;
  if (!data.subarray(HEADER, cacheAt).equals(sourceBytes)) return undefined;
  const cache = data.subarray(cacheAt, cacheAt + cacheLength);
  return cache.equals(data.subarray(cacheAt + cacheLength)) ? cache : undefined;
}

function bundleFile(tool) {
  return join(__dirname, '..', 'dist', 'bundle', `${tool}.cjs`);
}

/** The cache file's bytes when it is as trustworthy as the bundle (`bundle`: its fstat); undefined otherwise. */
function readCache(path, bundle, sourceLength) {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== bundle.uid || (st.mode & 0o022 & ~bundle.mode) !== 0) return undefined;
    // The cache is about as large as its source (README "Benchmarks"); far larger is not one.
    if (st.size < HEADER || st.size > HEADER + 9 * sourceLength) return undefined;
    const data = Buffer.allocUnsafe(st.size);
    let got = 0;
    for (let n; got < data.length && (n = readSync(fd, data, got, data.length - got, got)) > 0; ) got += n;
    return got === data.length ? data : undefined;
  } finally {
    closeSync(fd);
  }
}

/** Compiles and runs dist/bundle/<tool>.cjs; returns its exports and the vm.Script. */
function loadLight(tool) {
  const file = bundleFile(tool);
  const bundleFd = openSync(file, 'r');
  let sourceBytes, bundle;
  try {
    bundle = fstatSync(bundleFd);
    sourceBytes = readFileSync(bundleFd);
  } finally {
    closeSync(bundleFd);
  }
  let cachedData;
  try {
    const data = readCache(`${file}.cache`, bundle, sourceBytes.length);
    if (data) cachedData = decodeCache(data, sourceBytes);
  } catch {
    // No cache (or an unreadable one): compile the source.
  }
  // The bundle is ASCII (scripts/bundle.mjs checks): as latin1 it is the same string, copied
  // rather than decoded.
  const script = compile(file, sourceBytes.toString('latin1'), cachedData);
  const module = { exports: {} };
  // This file's require: the bundle requires only node: built-ins and npm packages, found from
  // bin/ as from dist/bundle/ (node:module's createRequire would load Node's ESM loader too).
  script.runInThisContext().call(module.exports, module.exports, require, module, file, dirname(file));
  return { exports: module.exports, script };
}

/**
 * A program's whole start (bin/<tool>.js): its light command when argv is one, else the
 * commander program, an ES module.
 */
function runProgram(tool, argv) {
  loadLight(tool)
    .exports.main(argv)
    .then(async (ran) => {
      // A light command is done (src/cli/light.ts runLight): end with its exit code, whatever
      // handle something left open.
      if (ran) process.exit();
      await (await import(`../dist/bundle/full/${tool}.js`)).main(argv);
    });
}

module.exports = { MAGIC, bundleFile, decodeCache, encodeCache, loadLight, runProgram };
