// Promise.withResolvers arrived in Node 22; @libp2p/utils 7.x and the yamux muxer
// call it (onDrain, ping). On Node 20 define it before any library is imported
// (yamux.md §6.2).
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}
