// helpers.mjs: starts intake-sb-emulator on free loopback ports with a temporary config for one
// test, and stops it. The binary comes from $SBEMU_BIN (set by CTest).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const KEY_NAME = "RootManageSharedAccessKey";
export const KEY = "SAS_KEY_VALUE";

export function emulatorBinary() {
  if (process.env.SBEMU_BIN) return process.env.SBEMU_BIN;
  for (const b of ["build-sb", "build"]) {
    const p = path.join(here, "..", "..", b, "tools", "sb-emulator", "intake-sb-emulator");
    if (existsSync(p)) return p;
  }
  throw new Error("set SBEMU_BIN to the intake-sb-emulator binary");
}

function queueCfg(q) {
  const parts = [`name = "${q.name}";`];
  const map = {
    lockDurationMs: "lock_duration_ms",
    maxDeliveryCount: "max_delivery_count",
    defaultTtlMs: "default_ttl_ms",
    deadLetteringOnExpiration: "dead_lettering_on_expiration",
    duplicateDetection: "duplicate_detection",
    duplicateWindowMs: "duplicate_window_ms",
    requiresSession: "requires_session",
    maxSizeMb: "max_size_mb",
  };
  for (const [k, v] of Object.entries(q)) {
    if (k === "name") continue;
    if (!map[k]) throw new Error(`unknown queue option ${k}`);
    parts.push(`${map[k]} = ${typeof v === "boolean" ? v : v};`);
  }
  return `{ ${parts.join(" ")} }`;
}

// Generates a throw-away self-signed certificate for 127.0.0.1 (never committed).
export function makeCert(dir) {
  const openssl = process.env.SBEMU_OPENSSL || "openssl";
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync(openssl, [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
  ], { stdio: "ignore" });
  return { cert, key };
}

// fdLimit runs it under `ulimit -n fdLimit`; handshakeTimeoutMs sets handshake_timeout_ms.
export async function startEmulator({ queues = [{ name: "q1" }], http = false, https = false,
  amqps = false, persistFile = null, extraKeys = [], verbose = false, fdLimit = null,
  handshakeTimeoutMs = null } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "sbemu-"));
  const lines = [
    `listen = "127.0.0.1";`,
    `port = 0;`,
    `keys = ( { name = "${KEY_NAME}"; key = "${KEY}"; } ${extraKeys.map((k) => `, { name = "${k.name}"; key = "${k.key}"; }`).join("")} );`,
    `queues = ( ${queues.map(queueCfg).join(", ")} );`,
  ];
  if (http) lines.push("http_port = 0;");
  if (persistFile) lines.push(`persist_file = "${persistFile}";`);
  if (handshakeTimeoutMs) lines.push(`handshake_timeout_ms = ${handshakeTimeoutMs};`);
  if (https || amqps) {
    const { cert, key } = makeCert(dir);
    lines.push(`tls_cert = "${cert}";`, `tls_key = "${key}";`);
    if (https) lines.push("https_port = 0;");
    if (amqps) lines.push("amqps_port = 0;");
  }
  const cfgPath = path.join(dir, "sbemu.cfg");
  writeFileSync(cfgPath, lines.join("\n") + "\n");
  const args = ["-c", cfgPath];
  if (verbose || process.env.SBEMU_VERBOSE) args.push("-v");
  // with an fd limit, sh execs the emulator: child.pid is the emulator's pid either way
  const child = fdLimit
    ? spawn("/bin/sh", ["-c", `ulimit -n ${fdLimit} && exec "$0" "$@"`, emulatorBinary(), ...args],
      { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(emulatorBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => {
    log += d;
    if (process.env.SBEMU_LOG) process.stderr.write(d);
  });
  const ready = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("emulator did not get ready:\n" + log)), 10000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /READY amqp=(-?\d+) amqps=(-?\d+) http=(-?\d+) https=(-?\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ amqp: +m[1], amqps: +m[2], http: +m[3], https: +m[4] });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`emulator exited with ${code}:\n${log}`));
    });
  });
  const exited = new Promise((resolve) => child.on("exit", (code, sig) => resolve({ code, sig })));
  return {
    ports: ready,
    pid: child.pid,
    connStr: (keyName = KEY_NAME, key = KEY) =>
      `Endpoint=sb://127.0.0.1:${ready.amqp};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true`,
    log: () => log,
    // SIGTERM, then the exit status; after waitMs without an exit, SIGKILL and {code: "hung"}.
    async stop(waitMs = 30000) {
      child.kill("SIGTERM");
      let timer;
      const r = await Promise.race([exited, new Promise((resolve) => {
        timer = setTimeout(() => resolve({ code: "hung", sig: null }), waitMs);
      })]);
      clearTimeout(timer);
      if (r.code === "hung") {
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits until the emulator's log matches re (its stderr may arrive after the client's answer).
export async function waitForLog(emu, re, ms = 3000) {
  const end = Date.now() + ms;
  while (!re.test(emu.log()) && Date.now() < end) await sleep(20);
  return emu.log();
}
