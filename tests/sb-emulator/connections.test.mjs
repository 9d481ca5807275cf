// connections.test.mjs: connections that never finish their handshake. Raw TCP clients (a
// protocol header and half a frame, or nothing at all) must not leave sockets behind in the
// emulator, the handshake deadline (handshake_timeout_ms) closes what stays silent, and SIGTERM
// with such connections open, even at the fd limit, exits 0 after writing persist_file.
// Descriptors are counted in /proc/<pid>/fd of the emulator (Linux).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { ServiceBusClient } from "@azure/service-bus";
import rhea from "rhea";
import { startEmulator, sleep, waitForLog, KEY_NAME, KEY } from "./helpers.mjs";

const AMQP_HEADER = Buffer.from("AMQP\x00\x01\x00\x00", "latin1");
const SASL_HEADER = Buffer.from("AMQP\x03\x01\x00\x00", "latin1");
// the first 6 bytes of a frame that announces 32 bytes: the rest never comes
const HALF_FRAME = Buffer.from([0x00, 0x00, 0x00, 0x20, 0x02, 0x00]);

const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

// Waits until the emulator holds `want` descriptors (or waitMs passed); returns the last count.
async function fdsSettle(pid, want, waitMs = 5000) {
  const end = Date.now() + waitMs;
  let n = fdCount(pid);
  while (n !== want && Date.now() < end) {
    await sleep(50);
    n = fdCount(pid);
  }
  return n;
}

// A raw client that writes `bytes`. `closed` resolves to true when the emulator closes the
// socket, or to false after waitMs. With halfClose it waits for the emulator's first bytes (its
// protocol header), then ends its side cleanly (FIN, nothing left unread, so no RST).
function rawClient(port, bytes, { halfClose = false, waitMs = 10000 } = {}) {
  const sock = net.connect({ host: "127.0.0.1", port });
  sock.on("error", () => {});
  let timer;
  const closed = new Promise((resolve) => {
    sock.on("close", () => resolve(true));
    timer = setTimeout(() => resolve(false), waitMs);
  }).finally(() => clearTimeout(timer));
  const connected = new Promise((resolve) => {
    sock.once("connect", () => resolve(true));
    sock.once("close", () => resolve(false));
  });
  sock.on("connect", () => {
    if (bytes.length) sock.write(bytes);
    if (halfClose) sock.once("data", () => sock.end());
  });
  sock.on("data", () => {}); // keep reading: unread bytes would turn our close into a RST
  return { sock, closed, connected };
}

// Runs fn on a fresh emulator, then stops it and checks that it exited 0 (unless fn failed:
// its error is the one to report).
async function withEmu(opts, fn) {
  const emu = await startEmulator(opts);
  let failed = true;
  try {
    await fn(emu);
    failed = false;
  } catch (e) {
    console.error(emu.log());
    throw e;
  } finally {
    const r = await emu.stop();
    if (!failed) assert.equal(r.code, 0, `emulator exit status (signal ${r.sig})`);
  }
}

test("a protocol header and half a frame, then a clean close: the emulator keeps no socket", async () => {
  await withEmu({}, async (emu) => {
    const base = fdCount(emu.pid);
    for (let round = 0; round < 5; round++) {
      const clients = [];
      for (let i = 0; i < 4; i++) {
        const header = i % 2 ? SASL_HEADER : AMQP_HEADER;
        clients.push(rawClient(emu.ports.amqp, Buffer.concat([header, HALF_FRAME]),
          { halfClose: true }));
      }
      const closed = await Promise.all(clients.map((c) => c.closed));
      assert.deepEqual(closed, [true, true, true, true], "the emulator closed its side");
    }
    assert.equal(await fdsSettle(emu.pid, base), base, "descriptors back to the baseline");
    assert.match(emu.log(), /the peer closed the socket without an AMQP close/);
  });
});

test("the handshake deadline closes silent and half-open connections and an open without put-token", async () => {
  await withEmu({ handshakeTimeoutMs: 1000 }, async (emu) => {
    const base = fdCount(emu.pid);
    const silent = rawClient(emu.ports.amqp, Buffer.alloc(0));
    const half = rawClient(emu.ports.amqp, Buffer.concat([AMQP_HEADER, HALF_FRAME]));
    const halfSasl = rawClient(emu.ports.amqp, Buffer.concat([SASL_HEADER, HALF_FRAME]));
    // AMQP open (no SASL) and nothing else: the service closes it after its 20 s
    const c = rhea.create_container();
    const conn = c.connect({ host: "127.0.0.1", port: emu.ports.amqp, reconnect: false });
    const condition = new Promise((resolve) => {
      conn.on("connection_error", (ctx) => resolve(ctx.connection.error?.condition));
      conn.on("disconnected", () => resolve("disconnected"));
    });
    // an authorised SDK connection is not affected by the deadline
    const client = new ServiceBusClient(
      `Endpoint=sb://127.0.0.1:${emu.ports.amqp};SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${KEY};UseDevelopmentEmulator=true`);
    try {
      const sender = client.createSender("q1");
      await sender.sendMessages({ body: "before" });
      assert.deepEqual(await Promise.all([silent.closed, half.closed, halfSasl.closed]),
        [true, true, true], "closed by the emulator");
      assert.equal(await condition, "amqp:unauthorized-access");
      await sender.sendMessages({ body: "after" });
      const msgs = await client.createReceiver("q1", { receiveMode: "receiveAndDelete" })
        .receiveMessages(2, { maxWaitTimeInMs: 2000 });
      assert.deepEqual(msgs.map((m) => m.body), ["before", "after"]);
      assert.match(emu.log(), /no SASL and AMQP open within 1000 ms of connecting/);
      assert.match(emu.log(), /no put-token accepted within 1000 ms of connecting; closing it/);
      const sdk = /conn (\d+): CBS put-token accepted/.exec(emu.log())[1];
      assert.doesNotMatch(emu.log(), new RegExp(`conn ${sdk}: (.*within 1000 ms|closed)`),
        "the SDK's connection stays");
    } finally {
      await client.close();
    }
    assert.equal(await fdsSettle(emu.pid, base), base, "descriptors back to the baseline");
  });
});

test("many half-sent connections under a low fd limit, then a real SDK client works", async () => {
  await withEmu({ fdLimit: 128 }, async (emu) => {
    for (let round = 0; round < 15; round++) {
      const clients = [];
      for (let i = 0; i < 10; i++)
        clients.push(rawClient(emu.ports.amqp, Buffer.concat([AMQP_HEADER, HALF_FRAME]),
          { halfClose: true, waitMs: 2000 }));
      await Promise.all(clients.map((c) => c.closed.then(() => c.sock.destroy())));
    }
    const client = new ServiceBusClient(
      `Endpoint=sb://127.0.0.1:${emu.ports.amqp};SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${KEY};UseDevelopmentEmulator=true`,
      { retryOptions: { maxRetries: 0, timeoutInMs: 5000 } });
    try {
      await client.createSender("q1").sendMessages({ body: "still served" });
      const [m] = await client.createReceiver("q1", { receiveMode: "receiveAndDelete" })
        .receiveMessages(1, { maxWaitTimeInMs: 2000 });
      assert.equal(m?.body, "still served");
    } finally {
      await client.close();
    }
  });
});

test("SIGTERM with idle and half-open connections at the fd limit exits 0 and writes persist_file", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "sbemu-conn-"));
  const persistFile = path.join(dir, "state.bin");
  const held = [];
  try {
    const emu = await startEmulator({ fdLimit: 128, persistFile, handshakeTimeoutMs: 60000 });
    let r;
    try {
      const client = new ServiceBusClient(emu.connStr());
      await client.createSender("q1").sendMessages([{ body: "m1" }, { body: "m2" }, { body: "m3" }]);
      await client.close();
      // more connections than the fd limit allows, kept open: silent ones and half-sent ones
      for (let i = 0; i < 200; i++) {
        const bytes = i % 2 ? Buffer.concat([AMQP_HEADER, HALF_FRAME]) : Buffer.alloc(0);
        held.push(rawClient(emu.ports.amqp, bytes, { waitMs: 60000 }));
      }
      await Promise.all(held.map((c) => Promise.race([c.connected, sleep(3000)])));
      r = await emu.stop(20000);
    } catch (e) {
      console.error(emu.log());
      throw e;
    }
    assert.equal(r.code, 0, `exit status (signal ${r.sig}):\n${emu.log().slice(-2000)}`);
    assert.match(emu.log(), /persist: state saved to/);
    assert.match(emu.log(), /closing the listeners and [1-9]\d* connection\(s\)/);
    // refusals at the limit are counted, not logged one line each
    const refusals = emu.log().match(/refused (\d+) (more )?connection\(s\)/g) || [];
    assert.ok(refusals.length >= 1 && refusals.length <= 4, refusals.join("\n"));

    const again = await startEmulator({ persistFile });
    const client = new ServiceBusClient(again.connStr());
    try {
      assert.match(await waitForLog(again, /restored/), /persist: 3 message\(s\) restored/);
      const msgs = await client.createReceiver("q1", { receiveMode: "receiveAndDelete" })
        .receiveMessages(3, { maxWaitTimeInMs: 2000 });
      assert.deepEqual(msgs.map((m) => m.body), ["m1", "m2", "m3"]);
    } finally {
      await client.close();
      assert.equal((await again.stop()).code, 0);
    }
  } finally {
    for (const c of held) c.sock.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
