package sim

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// sendBuffer bounds the bytes written on one direction of a connection and
// not yet read, like a socket's send and receive buffers together: beyond
// it Write blocks (until its deadline).
const sendBuffer = 1 << 20

// addr is a net.Addr on the simulated network.
type addr string

func (a addr) Network() string { return "sim" }
func (a addr) String() string  { return string(a) }

// segment is one Write's bytes on their way, or the end of the stream.
type segment struct {
	data []byte
	at   time.Time // when it arrives
	held bool      // sent over a cut link: retransmitted once it heals
	fin  bool      // the writer closed: EOF after what came before
}

// pipe is one direction of a connection.
type pipe struct {
	nw       *Network
	from, to int

	mu       sync.Mutex
	cond     sync.Cond
	segs     []segment
	off      int       // bytes of segs[0] already read
	last     time.Time // arrival of the last scheduled segment: streams stay in order
	queued   int       // bytes written and not yet read
	rclosed  bool      // the reading end is closed (or its host crashed): data is discarded
	wclosed  bool      // the writing end is closed: Write fails
	vanished bool      // the writing host crashed: nothing more arrives, not even an EOF
	rdl, wdl time.Time // read and write deadlines
	rtimer   *time.Timer
	wtimer   *time.Timer
}

func newPipe(nw *Network, from, to int) *pipe {
	p := &pipe{nw: nw, from: from, to: to}
	p.cond.L = &p.mu
	return p
}

// schedule decides when the held segments from index i on arrive, if the
// link now lets them through. Called with p.mu held.
func (p *pipe) schedule(i int) {
	now := time.Now()
	for ; i < len(p.segs); i++ {
		s := &p.segs[i]
		if !s.held {
			continue
		}
		cut, _, delay := p.nw.route(p.from, p.to)
		if cut {
			// Still cut: this and the rest stay held, in order, until Heal.
			p.nw.mu.Lock()
			p.nw.held[p] = struct{}{}
			p.nw.mu.Unlock()
			return
		}
		s.held = false
		s.at = now.Add(delay)
		if s.at.Before(p.last) {
			s.at = p.last
		}
		p.last = s.at
		time.AfterFunc(s.at.Sub(now), p.wake)
	}
}

func (p *pipe) wake() {
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// release sends what a cut held back, now that links may have healed.
func (p *pipe) release() {
	p.mu.Lock()
	p.schedule(0)
	p.mu.Unlock()
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.wclosed:
			return 0, net.ErrClosed
		case !p.wdl.IsZero() && !time.Now().Before(p.wdl):
			return 0, os.ErrDeadlineExceeded
		case p.rclosed || p.vanished:
			return len(b), nil // nobody will read it
		case p.queued < sendBuffer:
			p.queued += len(b)
			p.segs = append(p.segs, segment{data: append([]byte(nil), b...), held: true})
			p.schedule(len(p.segs) - 1)
			return len(b), nil
		}
		p.cond.Wait()
	}
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.rclosed {
			return 0, net.ErrClosed
		}
		if len(p.segs) > 0 && !p.segs[0].held && !time.Now().Before(p.segs[0].at) {
			s := &p.segs[0]
			if s.fin {
				return 0, io.EOF
			}
			n := copy(b, s.data[p.off:])
			p.off += n
			if p.off == len(s.data) {
				p.segs[0] = segment{}
				p.segs = p.segs[1:]
				p.off = 0
			}
			p.queued -= n
			p.cond.Broadcast() // a blocked writer may go on
			return n, nil
		}
		if !p.rdl.IsZero() && !time.Now().Before(p.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
		p.cond.Wait()
	}
}

// setDeadline sets the read or write deadline and arms a wake-up for it.
func (p *pipe) setDeadline(t time.Time, read bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dl, tm := &p.wdl, &p.wtimer
	if read {
		dl, tm = &p.rdl, &p.rtimer
	}
	*dl = t
	if *tm != nil {
		(*tm).Stop()
		*tm = nil
	}
	if !t.IsZero() {
		*tm = time.AfterFunc(time.Until(t), p.wake)
	}
	p.cond.Broadcast()
}

// closeWrite queues the end of the stream after the data (a FIN).
func (p *pipe) closeWrite() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wclosed {
		return
	}
	p.wclosed = true
	if !p.vanished && !p.rclosed {
		p.segs = append(p.segs, segment{fin: true, held: true})
		p.schedule(len(p.segs) - 1)
	}
	p.cond.Broadcast()
}

// closeRead discards what arrives from now on.
func (p *pipe) closeRead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rclosed = true
	p.segs, p.off, p.queued = nil, 0, 0
	p.stopTimers()
	p.cond.Broadcast()
}

// vanish drops what the crashed writer sent that has not arrived, and
// everything it would send.
func (p *pipe) vanish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vanished = true
	now := time.Now()
	keep := 0
	for _, s := range p.segs {
		if s.held || s.at.After(now) {
			break
		}
		keep++
	}
	p.segs = p.segs[:keep]
	p.cond.Broadcast()
}

func (p *pipe) stopTimers() {
	for _, t := range []**time.Timer{&p.rtimer, &p.wtimer} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
}

// conn is one end of a stream connection: a net.Conn.
type conn struct {
	nw      *Network
	host    int
	dialer  bool
	peer    *conn
	in, out *pipe
	local   addr
	remote  addr
	once    sync.Once
}

// Read implements net.Conn.
func (c *conn) Read(b []byte) (int, error) {
	n, err := c.in.read(b)
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: "sim", Source: c.local, Addr: c.remote, Err: err}
	}
	return n, err
}

// Write implements net.Conn.
func (c *conn) Write(b []byte) (int, error) {
	n, err := c.out.write(b)
	if err != nil {
		err = &net.OpError{Op: "write", Net: "sim", Source: c.local, Addr: c.remote, Err: err}
	}
	return n, err
}

// Close implements net.Conn: the peer reads EOF after what was written.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.out.closeWrite()
		c.in.closeRead()
		c.out.mu.Lock()
		c.out.stopTimers()
		c.out.mu.Unlock()
		c.nw.mu.Lock()
		delete(c.nw.conns, c)
		c.nw.mu.Unlock()
	})
	return nil
}

// CloseWrite ends what c sends, as TCP's half-close does: the peer reads
// EOF after the data, and c still reads.
func (c *conn) CloseWrite() error {
	c.out.closeWrite()
	return nil
}

// vanish is the end of c when its host crashes: the peer hears nothing.
func (c *conn) vanish() {
	c.out.vanish()
	c.in.closeRead()
}

// LocalAddr implements net.Conn.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.in.setDeadline(t, true)
	c.out.setDeadline(t, false)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error { c.in.setDeadline(t, true); return nil }

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error { c.out.setDeadline(t, false); return nil }

// listener is a host's listening socket: a net.Listener.
type listener struct {
	nw     *Network
	host   int
	conns  chan *conn
	closed chan struct{}
	once   sync.Once
}

// Listen opens host h's listening socket at StreamAddr(h).
func (nw *Network) Listen(h int) (net.Listener, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.hosts[h].listener != nil {
		return nil, fmt.Errorf("sim: host %d: listen: port %d in use", h, StreamPort)
	}
	l := &listener{nw: nw, host: h, conns: make(chan *conn, 128), closed: make(chan struct{})}
	nw.hosts[h].listener = l
	return l, nil
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "sim", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close implements net.Listener: connections not yet accepted are reset.
func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.nw.mu.Lock()
		if l.nw.hosts[l.host].listener == l {
			l.nw.hosts[l.host].listener = nil
		}
		l.nw.mu.Unlock()
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return addr(l.nw.StreamAddr(l.host)) }

// synTimeout is the wait before a lost SYN is sent again the first time.
const synTimeout = time.Second

// Dialer returns host h's dial function, for runtime.Config.Dial. A dial
// over a cut link, or to a crashed host, goes unanswered until the link is
// whole again (and the SYN sent again: after 1 s, 2 s, 4 s...) or ctx ends;
// a dial to a host that is up but has no listener is refused.
func (nw *Network) Dialer(h int) func(ctx context.Context, address string) (net.Conn, error) {
	return func(ctx context.Context, address string) (net.Conn, error) {
		fail := func(err error) error {
			return &net.OpError{Op: "dial", Net: "sim", Addr: addr(address), Err: err}
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil, fail(err)
		}
		dst := nw.hostOf(ap.Addr())
		if dst < 0 || ap.Port() != StreamPort {
			return nil, fail(fmt.Errorf("no route to host"))
		}
		// The SYN (or its answer) is lost while the link is cut, and sent
		// again after a timeout that doubles from 1 s, as the kernel does:
		// a dial through a cut succeeds at the first try after the heal.
		for rto := synTimeout; ; rto *= 2 {
			cut1, _, d1 := nw.route(h, dst)
			cut2, _, d2 := nw.route(dst, h)
			wait := rto
			if !cut1 && !cut2 {
				wait = d1 + d2 // SYN, SYN-ACK
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fail(ctx.Err())
			case <-t.C:
			}
			if !cut1 && !cut2 {
				break
			}
		}
		nw.mu.Lock()
		l := nw.hosts[dst].listener
		up := nw.hosts[h].up && nw.hosts[dst].up
		var cc *conn
		if l != nil && up {
			nw.seq[[2]int{h, -1}]++
			port := 32768 + nw.seq[[2]int{h, -1}]
			local := addr(netip.AddrPortFrom(nw.IP(h), 0).Addr().String() + ":" + strconv.FormatUint(port, 10))
			ab, ba := newPipe(nw, h, dst), newPipe(nw, dst, h)
			cc = &conn{nw: nw, host: h, dialer: true, in: ba, out: ab, local: local, remote: addr(address)}
			sc := &conn{nw: nw, host: dst, in: ab, out: ba, local: addr(address), remote: local}
			cc.peer, sc.peer = sc, cc
			select {
			case l.conns <- sc:
				nw.conns[cc] = struct{}{}
				nw.conns[sc] = struct{}{}
			default:
				cc = nil // backlog full
			}
		}
		nw.mu.Unlock()
		if cc == nil {
			return nil, fail(fmt.Errorf("connection refused"))
		}
		return cc, nil
	}
}
