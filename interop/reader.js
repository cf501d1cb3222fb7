// A JavaScript Hypercore reader (npm hypercore@10.38.2) that replicates a feed from a
// datdot hoster over loopback TCP, checks every block's content, counts datdot receipts
// (extension `datdot/v1/receipt`) and ends the session with `datdot/v1/end`.
// Usage: node reader.js <port> <feedKeyHex> <blockSize> [parallel] [noreceipts]
// Prints one JSON line {length, bytes, receipts, ms}; exit 1 on any error; bounded 60 s.
const net = require('net')
const Hypercore = require('hypercore')
const RAM = require('random-access-memory')
const c = require('compact-encoding')

function expected (i, size) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff
  return b
}

async function main () {
  const [port, keyHex, sizeS, parS, noReceipts] = process.argv.slice(2)
  const size = Number(sizeS)
  const parallel = Number(parS || 64)
  setTimeout(() => { console.error('timeout'); process.exit(1) }, 60000).unref()
  const core = new Hypercore(RAM, Buffer.from(keyHex, 'hex'))
  await core.ready()
  let receipts = 0
  let receiptEntries = 0
  core.registerExtension('datdot/v1/receipt', {
    encoding: 'binary',
    onmessage (raw) {
      // datdot extension bodies are a compact-encoding `buffer` (varint length + bytes),
      // which is how hypercore-protocol (Rust) encodes Extension.message.
      const buf = c.decode(c.buffer, raw)
      receipts++
      // version(1) tag(1) chain(32) hoster(32) feed(32) remote(32) seq(8) count(u32 LE) entries(40 each) sig(64)
      receiptEntries += buf.readUInt32LE(2 + 32 + 32 + 32 + 32 + 8)
    }
  })
  const end = core.registerExtension('datdot/v1/end', { encoding: 'binary' })
  const socket = net.connect(Number(port), '127.0.0.1')
  socket.on('error', e => { console.error(e); process.exit(1) })
  const stream = core.replicate(true)
  stream.on('error', e => { console.error(e); process.exit(1) })
  socket.pipe(stream).pipe(socket)
  const t0 = Date.now()
  await core.update({ wait: true })
  const length = core.length
  let bytes = 0
  let next = 0
  async function worker () {
    while (next < length) {
      const i = next++
      const b = await core.get(i)
      if (!b.equals(expected(i, size))) throw new Error('block ' + i + ' has wrong content')
      bytes += b.length
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  const ms = Date.now() - t0
  end.broadcast(c.encode(c.buffer, Buffer.alloc(0)))
  const t1 = Date.now()
  while (noReceipts !== 'noreceipts' && receiptEntries < length && Date.now() - t1 < 3000) await new Promise(resolve => setTimeout(resolve, 20))
  console.log(JSON.stringify({ length, bytes, receipts, receiptEntries, ms }))
  socket.destroy()
  process.exit(0)
}
main().catch(e => { console.error(e); process.exit(1) })
