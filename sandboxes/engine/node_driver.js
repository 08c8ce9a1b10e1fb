// The Node.js side of a node sandbox (``node_runtime.py`` starts it inside the sandbox, with the
// sandbox's isolation): evaluates each run in one persistent global scope and frames console output
// for the agent.
//
// Evaluation: V8's REPL mode through the in-process inspector (``Runtime.evaluate`` with
// ``replMode``, what a browser console does): top-level let/const/class/function persist across runs,
// top-level await works, a later run may declare a ``let`` again. Output: process.stdout/stderr are
// replaced (before anything touched them) by writers of the sandbox's framed pipe (fd 4; the
// ``kernel.FramedWriter`` format: mark, stream id, u16 length, payload; one write of at most PIPE_BUF
// bytes each, so it is atomic), so console.log and console.error arrive in the order written, as
// they are written. Child processes inherit fds 1 and 2 (plain pipes).
// Requests come from the kernel on fd 3 (u32 big-endian length + JSON); the end of a run goes back on
// fd 5 as 8 bytes (u32 run number, i32 exit code). The kernel trusts neither: user code runs here.
'use strict';

const fs = require('fs');
const inspector = require('inspector');
const net = require('net');
const vm = require('vm');
const { Readable, Writable } = require('stream');
const { createRequire } = require('module');

const REQUEST_FD = 3;
const FRAMED_FD = 4;
const REPLY_FD = 5;
const FRAME_MARK = 0xfe;
const STDOUT_ID = 1;
const STDERR_ID = 2;
const FRAME_PAYLOAD = 4092;
const MAX_REQUEST = 16 << 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(sleeper, 0, 0, 1); // a full pipe: the agent is reading, wait for room
    }
  }
}

function writeFrames(streamId, data) {
  for (let off = 0; off < data.length; off += FRAME_PAYLOAD) {
    const chunk = data.subarray(off, Math.min(off + FRAME_PAYLOAD, data.length));
    const frame = Buffer.allocUnsafe(4 + chunk.length);
    frame[0] = FRAME_MARK;
    frame[1] = streamId;
    frame.writeUInt16BE(chunk.length, 2);
    chunk.copy(frame, 4);
    writeAll(FRAMED_FD, frame);
  }
}

// write() is synchronous and keeps no state between calls: a run stopped by SIGINT in the middle of a
// console.log must not leave the stream waiting for a callback that never comes (Writable's _write would).
class FramedStream extends Writable {
  constructor(streamId, fd) {
    super();
    this.streamId = streamId;
    this.fd = fd;
    this.isTTY = false;
  }

  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    const data = typeof chunk === 'string'
      ? Buffer.from(chunk, encoding || 'utf8')
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    writeFrames(this.streamId, data);
    if (typeof callback === 'function') process.nextTick(callback);
    return true;
  }

  _write(chunk, _encoding, callback) {
    writeFrames(this.streamId, chunk);
    callback();
  }
}

const stdout = new FramedStream(STDOUT_ID, 1);
const stderr = new FramedStream(STDERR_ID, 2);
for (const [name, stream] of [['stdout', stdout], ['stderr', stderr]]) {
  Object.defineProperty(process, name, { configurable: true, enumerable: true, get: () => stream });
}

// What a script's module scope would give; the REPL scope is the global one.
const workspaceRequire = createRequire('/workspace/[run]');
globalThis.require = workspaceRequire;
globalThis.module = { exports: {}, require: workspaceRequire, id: '[run]', filename: '/workspace/[run]' };
globalThis.exports = globalThis.module.exports;
globalThis.__filename = '/workspace/[run]';
globalThis.__dirname = '/workspace';

const session = new inspector.Session();
session.connect();

let current = null; // { seq, done }

function reply(seq, exitCode) {
  const buf = Buffer.alloc(8);
  buf.writeUInt32BE(seq >>> 0, 0);
  buf.writeInt32BE(exitCode | 0, 4);
  writeAll(REPLY_FD, buf);
}

// Frames of this driver (and the inspector) under the user's code are not the user's.
function userStack(text) {
  const lines = String(text).split('\n');
  const cut = lines.findIndex((line) => /^\s+at (Session\.post|.*node:inspector)/.test(line));
  return (cut < 0 ? lines : lines.slice(0, cut)).join('\n');
}

class ExitRequest {
  constructor(code) {
    this.code = code;
  }
}

// process.exit ends the run with its code and keeps the sandbox's state (as SystemExit in Python).
process.exit = (code) => {
  throw new ExitRequest(code === undefined ? process.exitCode || 0 : Number(code) | 0);
};

// A run given stdin reads it from process.stdin, then end of file; otherwise process.stdin is node's
// own (fd 0: /dev/null).
const nodeStdin = Object.getOwnPropertyDescriptor(process, 'stdin');

function setStdin(text) {
  if (typeof text !== 'string') return;
  const stream = Readable.from([Buffer.from(text, 'utf8')]);
  stream.fd = 0;
  stream.isTTY = false;
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => stream });
}

function finish(exitCode) {
  const run = current;
  if (run === null) return;
  current = null;
  Object.defineProperty(process, 'stdin', nodeStdin);
  session.post('Runtime.releaseObjectGroup', { objectGroup: 'run' }, () => {});
  // Output already queued in this turn (resolved promises' logs) goes out before the end.
  setImmediate(() => reply(run.seq, exitCode));
}

function failRun(prefix, err) {
  if (err instanceof ExitRequest) {
    finish(err.code);
    return;
  }
  const text = err && err.stack ? err.stack : String(err);
  stderr.write(`${prefix}${userStack(text)}\n`);
  if (current !== null) finish(1);
}

process.on('uncaughtException', (err) => failRun('Uncaught ', err));
process.on('unhandledRejection', (err) => failRun('Uncaught (in promise) ', err));

// SIGINT (the kernel passes on a timeout, output cap or cancel): code running synchronously is stopped
// by the watchdog of vm's breakOnSigint around the evaluation (its state is kept); a run waiting on a
// promise is ended here and the promise left behind. A loop in a later continuation cannot be stopped:
// the kernel replaces this process after its grace period.
function interrupted() {
  if (current === null) return;
  stderr.write('Script execution was interrupted by `SIGINT`\n');
  finish(130);
}
process.on('SIGINT', interrupted);

const EVALUATE = Symbol.for('mem0.evaluate');
let evaluateNow = null;
Object.defineProperty(globalThis, EVALUATE, { value: () => evaluateNow(), enumerable: false });
const evaluateScript = new vm.Script('globalThis[Symbol.for("mem0.evaluate")]()', { filename: 'mem0' });

function evaluate(seq, code, stdin) {
  current = { seq };
  setStdin(stdin);
  const params = {
    expression: code,
    replMode: true,
    awaitPromise: true,
    objectGroup: 'run',
    silent: false,
  };
  evaluateNow = () => session.post('Runtime.evaluate', params, (err, res) => settle(seq, err, res));
  try {
    evaluateScript.runInThisContext({ breakOnSigint: true });
  } catch (err) {
    if (err && err.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') interrupted();
    else failRun('Uncaught ', err);
  }
}

function settle(seq, err, res) {
  if (current === null || current.seq !== seq) return;
  if (err) {
    stderr.write(`mem0: ${err.message}\n`);
    finish(1);
    return;
  }
  const details = res.exceptionDetails;
  if (!details) {
    finish(0);
    return;
  }
  const exc = res.result || details.exception || {};
  if (exc.className === 'ExitRequest') {
    // Thrown by process.exit inside the evaluated code: its code is a property of the object.
    session.post('Runtime.callFunctionOn', {
      objectId: exc.objectId, functionDeclaration: 'function () { return this.code }', returnByValue: true,
    }, (e, r) => finish(e ? 1 : Number(r.result.value) | 0));
    return;
  }
  const text = exc.description || details.text || 'Uncaught exception';
  stderr.write(`Uncaught ${userStack(text)}\n`);
  finish(1);
}

function configure(msg) {
  if (msg.env && typeof msg.env === 'object') {
    for (const [key, value] of Object.entries(msg.env)) process.env[key] = String(value);
  }
}

function handle(msg) {
  if (msg.op === 'run' && typeof msg.code === 'string' && Number.isInteger(msg.seq)) {
    evaluate(msg.seq, msg.code, msg.stdin);
  } else if (msg.op === 'configure') {
    configure(msg);
  }
}

// Requests: u32 big-endian length + JSON object.
let pending = Buffer.alloc(0);
const requests = new net.Socket({ fd: REQUEST_FD, readable: true, writable: false });
requests.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= 4) {
    const size = pending.readUInt32BE(0);
    if (size > MAX_REQUEST) process.reallyExit(70);
    if (pending.length < 4 + size) break;
    const body = pending.subarray(4, 4 + size);
    pending = pending.subarray(4 + size);
    handle(JSON.parse(body.toString('utf8')));
  }
});
requests.on('end', () => process.reallyExit(0)); // the kernel is gone: so is this process
requests.on('error', () => process.reallyExit(0));
reply(0, 0); // ready
