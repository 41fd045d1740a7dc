package attack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/transport"
)

// Conn is a TCP connection to the target on which the attacker writes raw
// frames.
type Conn struct {
	nc net.Conn
	br *bufio.Reader
	mu sync.Mutex // serialises writes
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// write writes b whole.
func (c *Conn) write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// frame is one frame read from the target.
type frame struct {
	kind, flags byte
	id          uint64
	payload     []byte
}

// readFrame reads the next frame, answering pings so that the target's
// keepalive does not close the connection.
func (c *Conn) readFrame() (frame, error) {
	for {
		var h [headerSize]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return frame{}, err
		}
		n := binary.BigEndian.Uint32(h[0:4])
		if n > maxFramePayload {
			return frame{}, fmt.Errorf("attack: frame of %d bytes from the target", n)
		}
		f := frame{kind: h[4], flags: h[5], id: binary.BigEndian.Uint64(h[8:16]), payload: make([]byte, n)}
		if _, err := io.ReadFull(c.br, f.payload); err != nil {
			return frame{}, err
		}
		if f.kind == framePing {
			if err := c.write(appendHeader(nil, 0, framePong, 0, f.id)); err != nil {
				return frame{}, err
			}
			continue
		}
		return f, nil
	}
}

// DialMember connects to addr as a member: it runs the real handshake of
// package transport with cfg (which holds the cluster key once the handshake
// needs one) through a relay in this process, then takes the TCP connection
// over. Each connection claims a new node ID (cfg.Self is ignored): a member
// can claim as many as it likes. It also returns the bytes the dialer sent
// during the handshake: what an eavesdropper would record.
func DialMember(ctx context.Context, addr string, cfg transport.Config) (*Conn, []byte, error) {
	cfg.Self = nodeid.New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("attack: relay: %w", err)
	}
	defer ln.Close()
	type relayed struct {
		up       net.Conn
		sent     []byte
		upToDown chan struct{}
		err      error
	}
	res := make(chan relayed, 1)
	go func() {
		down, err := ln.Accept()
		if err != nil {
			res <- relayed{err: err}
			return
		}
		defer down.Close()
		var d net.Dialer
		up, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			res <- relayed{err: err}
			return
		}
		r := relayed{up: up, upToDown: make(chan struct{})}
		go func() { // the target's handshake bytes to the dialer
			defer close(r.upToDown)
			buf := make([]byte, 4096)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					if _, werr := down.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		var sent bytes.Buffer // the dialer's bytes to the target, until it closes
		_, err = io.Copy(io.MultiWriter(up, &sent), down)
		r.sent, r.err = sent.Bytes(), err
		res <- r
	}()
	tc, err := transport.Dial(ctx, ln.Addr().String(), cfg, nodeid.None)
	if err != nil {
		ln.Close()
		r := <-res
		if r.up != nil {
			r.up.Close()
		}
		return nil, nil, err
	}
	tc.Abort(nil) // the relay forwards everything the dialer wrote, then sees EOF
	var r relayed
	select {
	case r = <-res:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	if r.err != nil {
		r.up.Close()
		return nil, nil, fmt.Errorf("attack: relaying the handshake: %w", r.err)
	}
	r.up.SetReadDeadline(time.Now()) // stop the other half of the relay
	<-r.upToDown
	r.up.SetReadDeadline(time.Time{})
	return &Conn{nc: r.up, br: bufio.NewReaderSize(r.up, 64<<10)}, r.sent, nil
}

// DialRaw connects to addr and writes handshake as is: the hello of an
// outsider, or a recorded one.
func DialRaw(ctx context.Context, addr string, handshake []byte) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(handshake); err != nil {
		nc.Close()
		return nil, err
	}
	return &Conn{nc: nc, br: bufio.NewReader(nc)}, nil
}
