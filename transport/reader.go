package transport

import (
	"fmt"
	"io"
	"sync"
)

// msgKey identifies a message being reassembled. Fragments are matched by
// kind and id together, so that two messages with the same id but different
// kinds (a request and a response, say) never mix.
type msgKey struct {
	id   uint64
	kind Kind
}

// partialOverhead is what each partly received message counts against
// Config.MaxPartialBytes on top of its bytes, so that a peer cannot hold
// unbounded memory by opening many messages with empty fragments: its real
// cost, a map entry (a 16-byte key, a 24-byte slice, the table's control
// byte) in a table that may be half empty after growing, and the slice's
// first buffer rounded up by the allocator.
const partialOverhead = 128

// A frameReader decodes the frame stream that follows the handshake. It
// validates each header before allocating anything for its payload,
// reassembles fragmented messages within the caps, and returns whole
// messages and control frames one at a time. It has no goroutine and no
// socket of its own, so tests and fuzz targets drive it from any io.Reader.
type frameReader struct {
	r            *connReader
	maxMessage   int                  // cap on one reassembled message
	maxPartial   int                  // cap on the memory held by partial messages
	partialBytes int                  // capacity of the partial messages, plus overheads
	budget       *Budget              // the node's, charged with partialBytes too; nil: none
	onFrame      func()               // called after each valid header, if set
	wantBody     func(Kind, int) bool // see BodyHandler.WantBody; nil: never
	body         Body                 // the payload left to a BodyHandler, when active
	hdr          [HeaderSize]byte
	buf          []byte   // payload of the last unfragmented message
	bufOwner     *Payload // the pooled Payload buf belongs to, if any
	whole        bool     // next returned buf last, and it was not taken
	partial      map[msgKey][]byte
	done         []byte // the last reassembled message, returned by next
}

// maxSpare bounds a reassembly buffer kept for reuse (see sparePool).
const maxSpare = 4 << 20

// sparePool holds the reassembly buffers of messages that have been
// handled, for the next fragmented message of any connection. They are
// pooled rather than kept by their connection, so that an idle connection
// holds none: a peer that sends one large message on each of many
// connections would otherwise make the node keep a buffer that size for
// each, outside the Budget, for as long as they stay open.
var sparePool sync.Pool // of *[]byte

func newFrameReader(r io.Reader, maxMessage, maxPartial int) *frameReader {
	fr := &frameReader{r: newConnReader(r), maxMessage: maxMessage, maxPartial: maxPartial}
	fr.body.fr = fr
	return fr
}

// A readError reports the underlying reader failing inside what: io.EOF at a
// frame boundary, io.ErrUnexpectedEOF inside a frame, or a network error.
type readError struct {
	what string
	err  error
}

func (e *readError) Error() string { return "transport: read " + e.what + ": " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// next returns the next whole message, or a control frame (Kind above
// KindMax, nil payload). The payload is valid until the next call. When
// wantBody asks for it, the payload of a single-frame message is left on
// the connection instead: next returns a nil payload with fr.body active,
// and the caller hands fr.body to the BodyHandler, then calls fr.body.end.
// Errors are a *ProtocolError for malformed input or a *readError.
func (fr *frameReader) next() (Header, []byte, error) {
	if err := fr.body.end(); err != nil { // (the caller has called it)
		return Header{}, nil, err
	}
	fr.whole = false
	if fr.done != nil { // the caller is done with it
		if cap(fr.done) <= maxSpare {
			spare := fr.done[:0]
			sparePool.Put(&spare)
		}
		fr.done = nil
	}
	if fr.bufOwner != nil {
		// The caller is done with the last payload too: a full-size
		// buffer goes back to the pool rather than stay with a
		// connection that may be idle from now on.
		fr.bufOwner.b = fr.buf[:0]
		payloadPool.Put(fr.bufOwner)
		fr.buf, fr.bufOwner = nil, nil
	}
	for {
		if err := fr.r.readFull(fr.hdr[:]); err != nil {
			return Header{}, nil, &readError{what: "frame header", err: err}
		}
		h, err := ParseHeader(fr.hdr[:])
		if err != nil {
			return h, nil, err
		}
		if fr.onFrame != nil {
			fr.onFrame()
		}
		if h.Kind > KindMax {
			return h, nil, nil
		}
		n := int(h.Length)          // at most MaxFramePayload: ParseHeader checked
		fr.r.bulk = n >= directRead // a bulk payload: fill the buffer sparingly
		key := msgKey{id: h.ID, kind: h.Kind}
		prev, fragmented := fr.partial[key]
		if !fragmented && h.Flags&FlagMore == 0 {
			if n > fr.maxMessage {
				return h, nil, fr.tooBig(h)
			}
			if fr.wantBody != nil && fr.wantBody(h.Kind, n) {
				fr.body.left, fr.body.active = n, true
				return h, nil, nil
			}
			if cap(fr.buf) < n {
				fr.buf, fr.bufOwner = payloadBuffer(n)
			}
			fr.buf = fr.buf[:n]
			if err := fr.r.readFull(fr.buf); err != nil {
				return h, nil, payloadError(err)
			}
			fr.whole = true
			return h, fr.buf, nil
		}
		if len(prev)+n > fr.maxMessage {
			return h, nil, fr.tooBig(h)
		}
		if !fragmented {
			if fr.partialBytes+partialOverhead > fr.maxPartial {
				return h, nil, fr.tooMuchPartial()
			}
			if err := fr.charge(partialOverhead); err != nil {
				return h, nil, err
			}
			if spare, _ := sparePool.Get().(*[]byte); spare != nil {
				if fr.partialBytes+cap(*spare) <= fr.maxPartial && fr.charge(cap(*spare)) == nil {
					prev = *spare
				} else {
					sparePool.Put(spare)
				}
			}
		}
		start := len(prev)
		if cap(prev)-start < n {
			// Grow by doubling, within the caps: the memory held is what
			// is charged, and reallocations stay logarithmic.
			// Near the cap it takes what is left at once, so that a peer
			// hovering there cannot force a copy per fragment.
			need := start + n
			newCap := min(max(2*cap(prev), need, 4096), fr.maxMessage, cap(prev)+fr.maxPartial-fr.partialBytes)
			if newCap < need {
				return h, nil, fr.tooMuchPartial()
			}
			if err := fr.charge(newCap - cap(prev)); err != nil {
				return h, nil, err
			}
			grown := make([]byte, start, newCap)
			copy(grown, prev)
			prev = grown
		}
		prev = prev[:start+n]
		if fr.partial == nil {
			fr.partial = make(map[msgKey][]byte)
		}
		fr.partial[key] = prev // charged: kept until completed or the end
		if err := fr.r.readFull(prev[start:]); err != nil {
			return h, nil, payloadError(err)
		}
		if h.Flags&FlagMore != 0 {
			continue
		}
		delete(fr.partial, key)
		fr.uncharge(cap(prev) + partialOverhead)
		fr.done = prev
		return h, prev, nil
	}
}

// take hands over the buffer of the message next returned last, if it was
// unfragmented; the reader continues with a new buffer.
func (fr *frameReader) take() *Payload {
	if !fr.whole {
		return nil
	}
	p := fr.bufOwner
	if p == nil {
		p = &Payload{}
	}
	p.b = fr.buf
	fr.buf, fr.bufOwner, fr.whole = nil, nil, false
	return p
}

// payloadError reports a failure to read a payload whose header has been
// read: the end of the stream there is always unexpected (io.ReadFull
// says io.EOF when the payload is missing entirely).
func payloadError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &readError{what: "frame payload", err: err}
}

// charge counts n more bytes held in partial messages, against the node's
// budget as well when there is one.
func (fr *frameReader) charge(n int) error {
	if fr.budget != nil && !fr.budget.take(int64(n), int64(fr.partialBytes)) {
		return fr.budget.refusal(int64(fr.partialBytes))
	}
	fr.partialBytes += n
	return nil
}

// uncharge gives back n bytes held in partial messages.
func (fr *frameReader) uncharge(n int) {
	fr.partialBytes -= n
	if fr.budget != nil {
		fr.budget.give(int64(n))
	}
}

// release gives back everything the partial messages hold, when the
// connection ends.
func (fr *frameReader) release() {
	fr.uncharge(fr.partialBytes)
	fr.partial = nil
}

func (fr *frameReader) tooMuchPartial() error {
	return &ProtocolError{Reason: fmt.Sprintf("partly received messages exceed the cap of %d bytes", fr.maxPartial)}
}

func (fr *frameReader) tooBig(h Header) error {
	return &ProtocolError{Reason: fmt.Sprintf("message %d of kind %d exceeds the cap of %d bytes", h.ID, h.Kind, fr.maxMessage)}
}
