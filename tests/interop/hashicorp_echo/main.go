// Echo peer over hashicorp/yamux (Debian's 2019 copy) for plait's interop tests.
//
// Spec: /work/shared/spec/yamux.md §6.1. Build (no go.mod, Debian's GOPATH):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$PWD/.gocache go build -o ../bin/hashicorp_echo .
//
// server: prints "LISTENING <addr>", serves every TCP connection as a server-role
// session and echoes each stream until EOF, then closes it (FIN).
// client: opens -streams streams at once, writes -size random bytes on each while
// reading the echo, compares, closes; prints "RESULT streams=N failed=F ..." and
// exits 1 when F > 0.
//
// Test hooks (all off by default):
//
//	-keepalive D, -write-timeout D, -backlog N   yamux.Config knobs
//	-accept-delay D   server waits D before its first AcceptStream on a session
//	                  (SYNs beyond -backlog are then reset by the library)
//	-idle D           client waits D between session start and opening streams
//	-reset-every K -reset-after N
//	                  every K-th stream of a session is reset after N bytes: the
//	                  server echoes N bytes then resets; the client writes N bytes,
//	                  waits for the first echoed byte (the stream was accepted), then
//	                  resets. The 2019 copy has no Stream.Reset, so the RST
//	                  frame (WINDOW_UPDATE|RST, length 0, exactly what the library
//	                  sends when it refuses a stream) is written by trackedConn at a
//	                  frame boundary of the session's outgoing byte stream.
//
// Event lines on stdout (remote = the peer's TCP port):
//
//	EVENT accept remote=P | EVENT pong remote=P | EVENT closed remote=P
//	EVENT reset remote=P stream=ID read=N     (the remote reset a stream we echoed)
//	EVENT did-reset remote=P stream=ID read=N (we reset a stream, -reset-every)
//
// -watch-stdin makes the program exit when its stdin reaches EOF, so a peer
// started by a test harness that died does not linger.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

const (
	headerSize = 12
	typeData   = 0
	typePing   = 2
	flagACK    = 2
	flagRST    = 8
)

var outMu sync.Mutex

func emit(format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// frameCursor follows frame boundaries in one direction of a yamux byte stream.
type frameCursor struct {
	hdr  [headerSize]byte
	have int
	body uint32
}

func (c *frameCursor) feed(b []byte, onHeader func(h []byte)) {
	for len(b) > 0 {
		if c.body > 0 {
			n := uint32(len(b))
			if n > c.body {
				n = c.body
			}
			b = b[n:]
			c.body -= n
			continue
		}
		n := copy(c.hdr[c.have:], b)
		c.have += n
		b = b[n:]
		if c.have == headerSize {
			c.have = 0
			if c.hdr[1] == typeData {
				c.body = binary.BigEndian.Uint32(c.hdr[8:12])
			}
			if onHeader != nil {
				onHeader(c.hdr[:])
			}
		}
	}
}

func (c *frameCursor) atBoundary() bool { return c.have == 0 && c.body == 0 }

// trackedConn counts inbound pongs and can inject whole frames between the
// session's own outgoing frames.
type trackedConn struct {
	net.Conn
	pongs   int64
	onPong  func()
	in      frameCursor
	wmu     sync.Mutex
	out     frameCursor
	pending [][]byte
}

func (t *trackedConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	t.in.feed(b[:n], func(h []byte) {
		if h[1] == typePing && binary.BigEndian.Uint16(h[2:4]) == flagACK {
			atomic.AddInt64(&t.pongs, 1)
			if t.onPong != nil {
				t.onPong()
			}
		}
	})
	return n, err
}

func (t *trackedConn) Write(b []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	n, err := t.Conn.Write(b)
	t.out.feed(b[:n], nil)
	if err == nil && t.out.atBoundary() {
		err = t.flushPending()
	}
	return n, err
}

func (t *trackedConn) flushPending() error {
	for len(t.pending) > 0 {
		if _, err := t.Conn.Write(t.pending[0]); err != nil {
			return err
		}
		t.pending = t.pending[1:]
	}
	return nil
}

// injectReset sends WINDOW_UPDATE|RST for stream id at the next frame boundary.
func (t *trackedConn) injectReset(id uint32) {
	frame := make([]byte, headerSize)
	frame[1] = 1 // window update
	binary.BigEndian.PutUint16(frame[2:4], flagRST)
	binary.BigEndian.PutUint32(frame[4:8], id)
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.pending = append(t.pending, frame)
	if t.out.atBoundary() {
		_ = t.flushPending()
	}
}

type options struct {
	keepalive, writeTimeout, acceptDelay, idle time.Duration
	backlog, resetEvery, resetAfter            int
}

func (o *options) config() *yamux.Config {
	cfg := yamux.DefaultConfig()
	if o.keepalive > 0 {
		cfg.KeepAliveInterval = o.keepalive
	}
	if o.writeTimeout > 0 {
		cfg.ConnectionWriteTimeout = o.writeTimeout
	}
	if o.backlog > 0 {
		cfg.AcceptBacklog = o.backlog
	}
	return cfg
}

func (o *options) resets(k int) bool { return o.resetEvery > 0 && k%o.resetEvery == 0 }

func remotePort(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	return c.RemoteAddr().String()
}

func runServer(addr string, o *options) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	emit("LISTENING %s", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			os.Exit(2)
		}
		go serveConn(conn, o)
	}
}

func serveConn(conn net.Conn, o *options) {
	remote := remotePort(conn)
	tc := &trackedConn{Conn: conn, onPong: func() { emit("EVENT pong remote=%s", remote) }}
	sess, err := yamux.Server(tc, o.config())
	if err != nil {
		fmt.Fprintln(os.Stderr, "session:", err)
		conn.Close()
		return
	}
	emit("EVENT accept remote=%s", remote)
	go func() {
		<-sess.CloseChan()
		emit("EVENT closed remote=%s", remote)
	}()
	time.Sleep(o.acceptDelay)
	for k := 1; ; k++ {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go echo(tc, st, remote, o.resets(k), o.resetAfter)
	}
}

func echo(tc *trackedConn, st *yamux.Stream, remote string, reset bool, resetAfter int) {
	buf := make([]byte, 64*1024)
	total := 0
	for {
		if reset && total >= resetAfter {
			tc.injectReset(st.StreamID())
			emit("EVENT did-reset remote=%s stream=%d read=%d", remote, st.StreamID(), total)
			return
		}
		n, err := st.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil && err == nil {
				err = werr
			}
			total += n
		}
		switch {
		case err == nil:
		case err == io.EOF:
			st.Close()
			return
		case err == yamux.ErrConnectionReset:
			emit("EVENT reset remote=%s stream=%d read=%d", remote, st.StreamID(), total)
			return
		default:
			emit("EVENT error remote=%s stream=%d read=%d err=%q", remote, st.StreamID(), total, err.Error())
			return
		}
	}
}

func runClient(addr string, streams, size int, o *options) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 2
	}
	tc := &trackedConn{Conn: conn}
	sess, err := yamux.Client(tc, o.config())
	if err != nil {
		fmt.Fprintln(os.Stderr, "session:", err)
		return 2
	}
	time.Sleep(o.idle)
	var ok, failed, localResets, remoteResets int64
	var wg sync.WaitGroup
	for k := 1; k <= streams; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			switch clientStream(tc, sess, size, o.resets(k), o.resetAfter, int64(k)) {
			case "ok":
				atomic.AddInt64(&ok, 1)
			case "local-reset":
				atomic.AddInt64(&localResets, 1)
			case "remote-reset":
				atomic.AddInt64(&remoteResets, 1)
			default:
				atomic.AddInt64(&failed, 1)
			}
		}(k)
	}
	wg.Wait()
	emit("RESULT streams=%d failed=%d ok=%d local_resets=%d remote_resets=%d pongs=%d",
		streams, failed, ok, localResets, remoteResets, atomic.LoadInt64(&tc.pongs))
	sess.Close()
	if failed > 0 {
		return 1
	}
	return 0
}

func clientStream(tc *trackedConn, sess *yamux.Session, size int, reset bool, resetAfter int, seed int64) string {
	st, err := sess.OpenStream()
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return "failed"
	}
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if reset {
		n := resetAfter
		if n > size {
			n = size
		}
		if _, err := st.Write(data[:n]); err != nil {
			fmt.Fprintln(os.Stderr, "write before reset:", err)
			return "failed"
		}
		// Wait for the first echoed bytes: the peer has accepted the stream.
		if _, err := st.Read(make([]byte, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "read before reset:", err)
			return "failed"
		}
		tc.injectReset(st.StreamID())
		return "local-reset"
	}
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		werr <- err
	}()
	got := make([]byte, size)
	_, rerr := io.ReadFull(st, got)
	wr := <-werr
	if rerr == yamux.ErrConnectionReset || wr == yamux.ErrConnectionReset {
		return "remote-reset"
	}
	if rerr != nil || wr != nil {
		fmt.Fprintf(os.Stderr, "stream %d: read %v write %v\n", st.StreamID(), rerr, wr)
		return "failed"
	}
	// Debian's copy returns EOF at once after a local Close: read everything first.
	st.Close()
	if !bytes.Equal(got, data) {
		fmt.Fprintf(os.Stderr, "stream %d: echo mismatch\n", st.StreamID())
		return "failed"
	}
	return "ok"
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:0", "listen (server) or dial (client) address")
	streams := flag.Int("streams", 8, "client: concurrent streams")
	size := flag.Int("size", 1<<20, "client: bytes echoed per stream")
	o := &options{}
	flag.DurationVar(&o.keepalive, "keepalive", 0, "keep-alive ping interval (0: library default)")
	flag.DurationVar(&o.writeTimeout, "write-timeout", 0, "ConnectionWriteTimeout, also the pong deadline (0: default)")
	flag.IntVar(&o.backlog, "backlog", 0, "AcceptBacklog (0: default 256)")
	flag.DurationVar(&o.acceptDelay, "accept-delay", 0, "server: wait before accepting streams on a session")
	flag.DurationVar(&o.idle, "idle", 0, "client: wait before opening streams")
	flag.IntVar(&o.resetEvery, "reset-every", 0, "reset every K-th stream of a session (0: never)")
	flag.IntVar(&o.resetAfter, "reset-after", 0, "bytes moved on a stream before it is reset")
	watchStdin := flag.Bool("watch-stdin", false, "exit when stdin reaches EOF (the test harness died)")
	flag.Parse()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	switch *mode {
	case "server":
		runServer(*addr, o)
	case "client":
		os.Exit(runClient(*addr, *streams, *size, o))
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}
}
