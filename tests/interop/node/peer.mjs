// Echo peer over @chainsafe/libp2p-yamux 8.0.1 for plait's interop tests.
//
// Spec: /work/shared/spec/yamux.md §6.2.
//
//   node peer.mjs server [PORT] [options]     prints "LISTENING <port>"
//   node peer.mjs client PORT STREAMS BYTES [options]
//                                             prints "RESULT streams=N failed=F ..."
//
// server: every TCP connection is a server-role muxer (direction 'inbound', even
// ids); each inbound stream is echoed until the remote's FIN, then closed (FIN).
// client: opens STREAMS streams at once, sends BYTES random bytes on each in 64 KiB
// chunks with back-pressure, closes, collects and compares the echo; exits 1 when
// any stream failed.
//
// Options (all off by default):
//   --keepalive MS      keepAliveInterval (keep-alive is on, 30 s, by default)
//   --max-inbound N     maxInboundStreams (default 1000; excess SYNs are reset)
//   --idle MS           client: wait between muxer start and opening streams
//   --reset-every K --reset-after N
//                       every K-th stream of a connection is reset (stream.abort,
//                       which sends WINDOW_UPDATE|RST) after N bytes: the server
//                       echoes N bytes then resets, the client sends N, waits for
//                       the first echoed bytes (the stream was accepted), then resets
//   --watch-stdin       exit when stdin reaches EOF (the test harness died)
//
// Event lines on stdout (remote = the peer's TCP port), as in the Go peer:
//   EVENT accept remote=P | EVENT pong remote=P | EVENT closed remote=P
//   EVENT reset remote=P stream=ID read=N      (the remote reset a stream we echoed)
//   EVENT did-reset remote=P stream=ID read=N  (we reset a stream, --reset-every)
import './polyfill.mjs' // must precede every library import
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { yamux } from '@chainsafe/libp2p-yamux'
import { defaultLogger } from '@libp2p/logger'
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'

const CHUNK = 64 * 1024

function emit (line) {
  process.stdout.write(line + '\n')
}

class SocketConnection extends AbstractMultiaddrConnection {
  constructor (socket, direction) {
    super({
      remoteAddr: multiaddr(`/ip4/${socket.remoteAddress}/tcp/${socket.remotePort}`),
      direction,
      log: defaultLogger().forComponent(`plait-interop:${direction}`),
      inactivityTimeout: 0
    })
    this.socket = socket
    socket.on('data', (buf) => this.onData(buf))
    socket.on('end', () => this.onRemoteCloseWrite())
    socket.on('close', () => this.onTransportClosed())
    socket.on('error', (err) => this.abort(err))
    socket.on('drain', () => this.safeDispatchEvent('drain'))
  }

  sendData (list) {
    const sentBytes = list.byteLength
    let canSendMore = true
    for (const buf of list) {
      canSendMore = this.socket.write(buf)
    }
    return { sentBytes, canSendMore }
  }

  sendReset () {
    this.socket.resetAndDestroy()
  }

  sendPause () {
    this.socket.pause()
  }

  sendResume () {
    this.socket.resume()
  }

  async sendClose () {
    await new Promise((resolve) => this.socket.end(resolve))
  }
}

function parseArgs (argv) {
  const positional = []
  const opts = { keepalive: 0, maxInbound: 0, idle: 0, resetEvery: 0, resetAfter: 0, watchStdin: false }
  const names = {
    '--keepalive': 'keepalive',
    '--max-inbound': 'maxInbound',
    '--idle': 'idle',
    '--reset-every': 'resetEvery',
    '--reset-after': 'resetAfter'
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--watch-stdin') {
      opts.watchStdin = true
    } else if (arg in names) {
      opts[names[arg]] = Number(argv[++i])
    } else if (arg.startsWith('--')) {
      throw new Error(`unknown option ${arg}`)
    } else {
      positional.push(arg)
    }
  }
  return { positional, opts }
}

function createMuxer (socket, direction, opts, onPong) {
  const init = {}
  if (opts.keepalive > 0) {
    init.enableKeepAlive = true
    init.keepAliveInterval = opts.keepalive
  }
  if (opts.maxInbound > 0) {
    init.maxInboundStreams = opts.maxInbound
  }
  const conn = new SocketConnection(socket, direction)
  const muxer = yamux(init)().createStreamMuxer(conn)
  // The keep-alive task calls this.ping() (first run in a microtask): count pongs.
  const ping = muxer.ping.bind(muxer)
  muxer.ping = async (options) => {
    const rtt = await ping(options)
    onPong()
    return rtt
  }
  return { conn, muxer }
}

const resets = (opts, k) => opts.resetEvery > 0 && k % opts.resetEvery === 0

async function echo (stream, remote, reset, resetAfter) {
  let total = 0
  const doReset = () => {
    stream.abort(new Error('interop test reset'))
    emit(`EVENT did-reset remote=${remote} stream=${stream.streamId} read=${total}`)
  }
  try {
    if (reset && resetAfter === 0) {
      doReset()
      return
    }
    for await (const chunk of stream) {
      total += chunk.byteLength
      if (!stream.send(chunk)) {
        await stream.onDrain()
      }
      if (reset && total >= resetAfter) {
        doReset()
        return
      }
    }
    await stream.close()
  } catch (err) {
    // A RST can also surface as a send on a stream that is already closed.
    if (err?.name === 'StreamResetError' || stream.status === 'reset') {
      emit(`EVENT reset remote=${remote} stream=${stream.streamId} read=${total}`)
    } else {
      emit(`EVENT error remote=${remote} stream=${stream.streamId} read=${total} err=${JSON.stringify(String(err))}`)
    }
  }
}

async function runServer (port, opts) {
  const server = net.createServer({ noDelay: true }, (socket) => {
    const remote = socket.remotePort
    const { muxer } = createMuxer(socket, 'inbound', opts, () => emit(`EVENT pong remote=${remote}`))
    emit(`EVENT accept remote=${remote}`)
    socket.on('close', () => emit(`EVENT closed remote=${remote}`))
    let k = 0
    muxer.addEventListener('stream', (evt) => {
      k += 1
      echo(evt.detail, remote, resets(opts, k), opts.resetAfter)
    })
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  emit(`LISTENING ${server.address().port}`)
}

async function clientStream (muxer, size, reset, resetAfter) {
  let stream
  try {
    stream = await muxer.createStream()
  } catch (err) {
    process.stderr.write(`open: ${err}\n`)
    return 'failed'
  }
  const data = randomBytes(size)
  const write = async (end) => {
    for (let off = 0; off < end; off += CHUNK) {
      if (!stream.send(data.subarray(off, Math.min(off + CHUNK, end)))) {
        await stream.onDrain()
      }
    }
  }
  if (reset) {
    try {
      await write(Math.min(resetAfter, size))
      // Wait for the first echoed bytes: the peer has accepted the stream.
      const first = await stream[Symbol.asyncIterator]().next()
      if (first.done) {
        throw new Error('stream ended before any echo')
      }
    } catch (err) {
      process.stderr.write(`before reset: ${err}\n`)
      return 'failed'
    }
    stream.abort(new Error('interop test reset'))
    return 'local-reset'
  }
  const reader = (async () => {
    const parts = []
    for await (const chunk of stream) {
      parts.push(chunk.subarray())
    }
    return Buffer.concat(parts)
  })()
  const writer = (async () => {
    await write(size)
    await stream.close()
  })()
  const [got, wrote] = await Promise.allSettled([reader, writer])
  for (const r of [got, wrote]) {
    if (r.status === 'rejected') {
      if (r.reason?.name === 'StreamResetError' || stream.status === 'reset') {
        return 'remote-reset'
      }
      // pEvent rejects with the 'close' event itself: show its error
      process.stderr.write(`stream ${stream.streamId}: ${r.reason?.error ?? r.reason?.type ?? r.reason}\n`)
      return 'failed'
    }
  }
  if (!data.equals(got.value)) {
    process.stderr.write(`stream ${stream.streamId}: echo mismatch (${got.value.length} bytes back)\n`)
    return 'failed'
  }
  return 'ok'
}

async function runClient (port, streams, size, opts) {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
  await once(socket, 'connect')
  let pongs = 0
  const { conn, muxer } = createMuxer(socket, 'outbound', opts, () => { pongs += 1 })
  if (opts.idle > 0) {
    await sleep(opts.idle)
  }
  const jobs = []
  for (let k = 1; k <= streams; k++) {
    jobs.push(clientStream(muxer, size, resets(opts, k), opts.resetAfter))
  }
  const outcomes = await Promise.all(jobs)
  const count = (name) => outcomes.filter((o) => o === name).length
  const failed = streams - count('ok') - count('local-reset') - count('remote-reset')
  emit(`RESULT streams=${streams} failed=${failed} ok=${count('ok')} ` +
    `local_resets=${count('local-reset')} remote_resets=${count('remote-reset')} pongs=${pongs}`)
  await muxer.close()
  await conn.close()
  return failed > 0 ? 1 : 0
}

async function main () {
  const [mode, ...rest] = process.argv.slice(2)
  const { positional, opts } = parseArgs(rest)
  if (opts.watchStdin) {
    process.stdin.on('end', () => process.exit(0))
    process.stdin.resume()
  }
  if (mode === 'server') {
    await runServer(Number(positional[0] ?? 0), opts)
  } else if (mode === 'client') {
    const [port, streams, size] = positional.map(Number)
    process.exit(await runClient(port, streams ?? 8, size ?? 1048576, opts))
  } else {
    process.stderr.write('usage: node peer.mjs server [PORT] | client PORT STREAMS BYTES [options]\n')
    process.exit(2)
  }
}

main().catch((err) => {
  process.stderr.write(`fatal: ${err?.stack ?? err}\n`)
  process.exit(2)
})
