// Drives the real JS SDK (@langchain/langgraph-sdk) for tests/e2e/test_js_sdk.py, which asserts
// on what this prints: the assertions live in Python so that a failure reads like any other.
//
//   node sdk_driver.mjs --serve
//       One process for many calls (Node's start-up costs ~0.4 s): each stdin line is a request
//       {"id", "client": {"apiUrl", "apiKey", "defaultHeaders"}, "call": "runs.stream", "args": [...]}
//       and, for a stream that never ends by itself (threads.joinStream), "until": a part to stop
//       after ({"event": "metadata", "data": {"status": "run_done"}} matches any part holding those
//       keys and values); each stdout line the answer {"id", "ok": true, "result"} or {"id", "ok": false, "error"}.
//       The first line out is {"ready": true, "sdk": VERSION, "node": VERSION}.
//   node sdk_driver.mjs CALL API_URL [ARGS_JSON]
//       One call by hand; the credentials come from DRAFTLOOP_API_KEY or DRAFTLOOP_TOKEN.
//
// CALL names an SDK method by its path on the client ("threads.create", "runs.wait"); a stream
// it returns is read to its end (or to the part `until` matches) and answered as the list of
// {event, data, id} it yielded.

import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";

import { Client } from "@langchain/langgraph-sdk";

const clients = new Map();

function clientFor({ apiUrl, apiKey = null, defaultHeaders = {} }) {
  const key = JSON.stringify([apiUrl, apiKey, defaultHeaders]);
  if (!clients.has(key)) {
    // apiKey null, not undefined: undefined makes the SDK read LANGGRAPH_API_KEY and friends
    // from the environment, and a developer's key must not decide what a test sends.
    // No retries: a test wants the server's first answer, a 5xx included.
    clients.set(key, new Client({ apiUrl, apiKey, defaultHeaders, callerOptions: { maxRetries: 0 } }));
  }
  return clients.get(key);
}

function method(client, path) {
  const parts = path.split(".");
  const name = parts.pop();
  const owner = parts.reduce((object, part) => object?.[part], client);
  if (typeof owner?.[name] !== "function") {
    throw new TypeError(`the SDK client has no method ${path}`);
  }
  return owner[name].bind(owner);
}

function matches(value, pattern) {
  if (pattern !== null && typeof pattern === "object" && !Array.isArray(pattern)) {
    return value !== null && typeof value === "object"
      && Object.entries(pattern).every(([key, wanted]) => matches(value[key], wanted));
  }
  return JSON.stringify(value) === JSON.stringify(pattern);
}

async function settle(value, until) {
  if (value && typeof value[Symbol.asyncIterator] === "function") {
    const parts = [];
    // Leaving the loop early closes the SDK's generator, and with it the HTTP response.
    for await (const part of value) {
      parts.push(part);
      if (until != null && matches(part, until)) break;
    }
    return parts;
  }
  return value;
}

function describe(error) {
  return {
    name: error?.name ?? "Error",
    message: String(error?.message ?? error),
    // The SDK's HTTP errors carry the response status (and the server's body in the message).
    status: error?.status ?? error?.response?.status ?? null,
  };
}

async function answer(request) {
  try {
    const call = method(clientFor(request.client), request.call);
    return { id: request.id, ok: true, result: (await settle(call(...(request.args ?? [])), request.until)) ?? null };
  } catch (error) {
    return { id: request.id, ok: false, error: describe(error) };
  }
}

async function sdkVersion() {
  const manifest = new URL("./node_modules/@langchain/langgraph-sdk/package.json", import.meta.url);
  return JSON.parse(await readFile(manifest, "utf8")).version;
}

function write(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function serve() {
  write({ ready: true, sdk: await sdkVersion(), node: process.version });
  const pending = new Set();
  // Calls run concurrently and answer in the order they finish; the id pairs them up.
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (error) {
      write({ id: null, ok: false, error: describe(error) });
      continue;
    }
    const job = answer(request).then(write);
    pending.add(job);
    job.finally(() => pending.delete(job));
  }
  await Promise.all(pending);
}

async function once([call, apiUrl, args = "[]"]) {
  const apiKey = process.env.DRAFTLOOP_API_KEY ?? null;
  const token = process.env.DRAFTLOOP_TOKEN;
  const defaultHeaders = token ? { Authorization: `Bearer ${token}` } : {};
  const reply = await answer({ id: 1, client: { apiUrl, apiKey, defaultHeaders }, call, args: JSON.parse(args) });
  process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
  process.exitCode = reply.ok ? 0 : 1;
}

const argv = process.argv.slice(2);
if (argv[0] === "--serve") {
  await serve();
} else if (argv.length >= 2) {
  await once(argv);
} else {
  process.stderr.write("usage: node sdk_driver.mjs --serve | CALL API_URL [ARGS_JSON]\n");
  process.exitCode = 2;
}
