// A JavaScript Hypercore writer (npm hypercore@10.38.2) serving its feed on loopback TCP.
// Usage: node writer.js <blocks> <blockSize>
// Prints one JSON line {key, noise, port}; exits when stdin closes or after 120 s.
const net = require('net')
const Hypercore = require('hypercore')
const RAM = require('random-access-memory')
const crypto = require('hypercore-crypto')

function block (i, size) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff
  return b
}

async function main () {
  const blocks = Number(process.argv[2] || 100)
  const size = Number(process.argv[3] || 4096)
  const core = new Hypercore(RAM)
  await core.ready()
  for (let i = 0; i < blocks; i += 64) {
    const batch = []
    for (let k = i; k < Math.min(blocks, i + 64); k++) batch.push(block(k, size))
    await core.append(batch)
  }
  const keyPair = crypto.keyPair()
  const server = net.createServer(socket => {
    socket.on('error', () => {})
    const stream = core.replicate(false, { keyPair })
    stream.on('error', () => {})
    socket.pipe(stream).pipe(socket)
  })
  server.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({
      key: core.key.toString('hex'),
      noise: keyPair.publicKey.toString('hex'),
      port: server.address().port
    }))
  })
  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
  setTimeout(() => process.exit(0), 120000).unref()
}
main().catch(e => { console.error(e); process.exit(1) })
