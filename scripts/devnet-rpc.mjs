// Tiny JSON-RPC helper for scripts/devnet-chain (Node 22: global WebSocket).
//   node devnet-rpc.mjs wait URL SECONDS   exit 0 once chain_getHeader answers
//   node devnet-rpc.mjs tick URL SECONDS   call dev_newBlock every SECONDS, reconnecting
const [mode, url, secs] = process.argv.slice(2);
const seconds = Number(secs ?? 2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function call(method, params = []) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { ws.close(); reject(new Error("timeout")); }, 10_000);
    ws.onopen = () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }));
    ws.onmessage = (m) => { clearTimeout(timer); ws.close(); const r = JSON.parse(m.data); r.error ? reject(new Error(r.error.message)) : resolve(r.result); };
    ws.onerror = () => { clearTimeout(timer); reject(new Error("connection failed")); };
  });
}

if (mode === "wait") {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    try { const h = await call("chain_getHeader"); console.log(`chain answers at block ${parseInt(h.number, 16)}`); process.exit(0); }
    catch { if (Date.now() > deadline) process.exit(1); await sleep(250); }
  }
} else if (mode === "tick") {
  let stopping = false;
  process.on("SIGTERM", () => { stopping = true; process.exit(0); });
  while (!stopping) {
    try { await call("dev_newBlock"); } catch (e) { console.error(`tick: ${e.message}`); }
    await sleep(seconds * 1000);
  }
} else {
  console.error("usage: devnet-rpc.mjs wait|tick URL SECONDS");
  process.exit(2);
}
