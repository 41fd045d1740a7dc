package main

// The raw system: a hand-written, pipelined, length-prefixed TCP echo. It is
// the practical floor: what a competent programmer writes for this one call
// shape with no framework at all. One connection carries every caller's
// requests; writes from concurrent callers are batched (the last writer of a
// burst flushes); one reader goroutine per side dispatches replies by id.
// Messages are decoded the ordinary way, a fresh string per string and a
// fresh slice per slice, so allocation figures compare like with like.
//
// Frame: u32 length of what follows | u64 call id | message.
// Message: i64 ID | u32 len, Name | u32 count, (u32 len, tag)... | u32 len, Payload.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/trellisrpc/trellis/bench/echo"
)

const rawMaxFrame = 16 << 20

func rawSize(name string, tags []string, payload []byte) int {
	n := 8 + 4 + len(name) + 4 + 4 + len(payload)
	for _, t := range tags {
		n += 4 + len(t)
	}
	return n
}

// rawWrite writes one frame to w without allocating; b is scratch space
// that outlives the call (a local array would escape through bufio.Writer).
func rawWrite(w *bufio.Writer, b *[24]byte, id uint64, msgID int64, name string, tags []string, payload []byte) error {
	size := rawSize(name, tags, payload)
	binary.LittleEndian.PutUint32(b[0:], uint32(8+size))
	binary.LittleEndian.PutUint64(b[4:], id)
	binary.LittleEndian.PutUint64(b[12:], uint64(msgID))
	binary.LittleEndian.PutUint32(b[20:], uint32(len(name)))
	w.Write(b[:24])
	w.WriteString(name)
	binary.LittleEndian.PutUint32(b[:], uint32(len(tags)))
	w.Write(b[:4])
	for _, t := range tags {
		binary.LittleEndian.PutUint32(b[:], uint32(len(t)))
		w.Write(b[:4])
		w.WriteString(t)
	}
	binary.LittleEndian.PutUint32(b[:], uint32(len(payload)))
	w.Write(b[:4])
	_, err := w.Write(payload)
	return err
}

// rawReadFrame reads one frame into *buf (grown as needed) and returns the
// call id and the message.
func rawReadFrame(r *bufio.Reader, buf *[]byte) (uint64, []byte, error) {
	if cap(*buf) < 12 {
		*buf = make([]byte, 4096)
	}
	h := (*buf)[:12]
	if _, err := io.ReadFull(r, h); err != nil {
		return 0, nil, err
	}
	n := int(binary.LittleEndian.Uint32(h[0:]))
	if n < 8 || n > rawMaxFrame {
		return 0, nil, fmt.Errorf("raw: bad frame length %d", n)
	}
	id := binary.LittleEndian.Uint64(h[4:])
	n -= 8
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return id, b, nil
}

var errRawShort = errors.New("raw: short message")

// rawDecode decodes a message, copying every string and slice out of b.
func rawDecode(b []byte) (id int64, name string, tags []string, payload []byte, err error) {
	u32 := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := u32()
		if !ok || n > len(b) {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	if len(b) < 8 {
		return 0, "", nil, nil, errRawShort
	}
	id = int64(binary.LittleEndian.Uint64(b))
	b = b[8:]
	var ok bool
	if name, ok = str(); !ok {
		return 0, "", nil, nil, errRawShort
	}
	nt, ok := u32()
	if !ok || nt > len(b)/4 {
		return 0, "", nil, nil, errRawShort
	}
	if nt > 0 {
		tags = make([]string, nt)
		for i := range tags {
			if tags[i], ok = str(); !ok {
				return 0, "", nil, nil, errRawShort
			}
		}
	}
	np, ok := u32()
	if !ok || np != len(b) {
		return 0, "", nil, nil, errRawShort
	}
	if np > 0 {
		payload = make([]byte, np)
		copy(payload, b)
	}
	return id, name, tags, payload, nil
}

// rawWriter batches frames from concurrent writers on one connection: the
// last writer of a burst flushes.
type rawWriter struct {
	waiting atomic.Int32
	mu      sync.Mutex
	bw      *bufio.Writer
	scratch [24]byte
	err     error
}

func (w *rawWriter) write(id uint64, msgID int64, name string, tags []string, payload []byte) error {
	w.waiting.Add(1)
	w.mu.Lock()
	if w.err == nil {
		w.err = rawWrite(w.bw, &w.scratch, id, msgID, name, tags, payload)
	}
	if w.waiting.Add(-1) == 0 && w.err == nil {
		w.err = w.bw.Flush()
	}
	err := w.err
	w.mu.Unlock()
	return err
}

// ---- server ----

// serveRaw serves the raw protocol on ln; perRequest selects a goroutine
// per request instead of handling requests inline on the reader.
func serveRaw(ln net.Listener, perRequest bool) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if perRequest {
			go rawConnPerRequest(c)
		} else {
			go rawConnInline(c)
		}
	}
}

// rawConnInline reads, handles and answers requests in turn, flushing when
// no further request is already buffered.
func rawConnInline(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	var buf []byte
	var scratch [24]byte
	impl := echo.Impl{}
	ctx := context.Background()
	for {
		id, msg, err := rawReadFrame(br, &buf)
		if err != nil {
			return
		}
		mid, name, tags, payload, err := rawDecode(msg)
		if err != nil {
			return
		}
		resp, err := impl.Echo(ctx, echo.Req{ID: mid, Name: name, Tags: tags, Payload: payload})
		if err != nil {
			return
		}
		if err := rawWrite(bw, &scratch, id, resp.ID, resp.Name, resp.Tags, resp.Payload); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// rawConnPerRequest starts a goroutine per request; replies are batched by
// rawWriter.
func rawConnPerRequest(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	w := &rawWriter{bw: bufio.NewWriterSize(c, 64<<10)}
	var buf []byte
	impl := echo.Impl{}
	ctx := context.Background()
	for {
		id, msg, err := rawReadFrame(br, &buf)
		if err != nil {
			return
		}
		mid, name, tags, payload, err := rawDecode(msg)
		if err != nil {
			return
		}
		go func() {
			resp, err := impl.Echo(ctx, echo.Req{ID: mid, Name: name, Tags: tags, Payload: payload})
			if err != nil {
				c.Close()
				return
			}
			if w.write(id, resp.ID, resp.Name, resp.Tags, resp.Payload) != nil {
				c.Close()
			}
		}()
	}
}

// ---- client ----

type rawCall struct {
	done chan struct{}
	resp echo.Resp
	err  error
}

var rawCallPool = sync.Pool{New: func() any { return &rawCall{done: make(chan struct{}, 1)} }}

type rawClient struct {
	c net.Conn
	w rawWriter

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*rawCall
	err     error
}

func dialRaw(ctx context.Context, addr string) (caller, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawClient{c: c, pending: make(map[uint64]*rawCall)}
	rc.w.bw = bufio.NewWriterSize(c, 64<<10)
	go rc.readLoop()
	return rc, nil
}

func (rc *rawClient) Echo(ctx context.Context, req *echo.Req) (echo.Resp, error) {
	cl := rawCallPool.Get().(*rawCall)
	rc.mu.Lock()
	if rc.err != nil {
		err := rc.err
		rc.mu.Unlock()
		return echo.Resp{}, err
	}
	rc.next++
	id := rc.next
	rc.pending[id] = cl
	rc.mu.Unlock()
	if err := rc.w.write(id, req.ID, req.Name, req.Tags, req.Payload); err != nil {
		rc.fail(err)
	}
	<-cl.done
	resp, err := cl.resp, cl.err
	cl.resp, cl.err = echo.Resp{}, nil
	rawCallPool.Put(cl)
	return resp, err
}

func (rc *rawClient) readLoop() {
	br := bufio.NewReaderSize(rc.c, 64<<10)
	var buf []byte
	for {
		id, msg, err := rawReadFrame(br, &buf)
		if err != nil {
			rc.fail(err)
			return
		}
		rc.mu.Lock()
		cl := rc.pending[id]
		delete(rc.pending, id)
		rc.mu.Unlock()
		if cl == nil {
			rc.fail(fmt.Errorf("raw: reply to unknown call %d", id))
			return
		}
		cl.resp.ID, cl.resp.Name, cl.resp.Tags, cl.resp.Payload, cl.err = rawDecode(msg)
		cl.done <- struct{}{}
	}
}

// fail fails every pending call and the client.
func (rc *rawClient) fail(err error) {
	rc.mu.Lock()
	if rc.err == nil {
		rc.err = err
	}
	for id, cl := range rc.pending {
		delete(rc.pending, id)
		cl.err = err
		cl.done <- struct{}{}
	}
	rc.mu.Unlock()
	rc.c.Close()
}

func (rc *rawClient) Close() error {
	rc.fail(net.ErrClosed)
	return nil
}
