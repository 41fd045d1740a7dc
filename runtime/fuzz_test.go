package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
	"github.com/trellisrpc/trellis/transport"
)

// fuzzNode returns a node without a listener for fuzzing handlers directly.
func fuzzNode(t testing.TB) *Node {
	n, err := NewNode(Config{Name: "fuzz", ID: 1, Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func streamMsg(op, id uint64, body []byte) []byte {
	return append(appendRequest(nil, &request{object: id, method: op}), body...)
}

// FuzzHandleStream feeds arbitrary stream messages to a node: they may be
// refused, but never panic, and never touch a stream of another node.
func FuzzHandleStream(f *testing.F) {
	f.Add(streamMsg(opCredit, 1, binary.AppendUvarint(nil, 1024)))
	f.Add(streamMsg(opData, 1, append(binary.AppendUvarint(nil, 0), 0, 'x')))
	f.Add(streamMsg(opData, 1, append(binary.AppendUvarint(nil, 0), dataEOF)))
	f.Add(streamMsg(opCancel, 1, nil))
	f.Add(append(appendRequest(nil, &request{routed: true, dst: 9, src: 2, ttl: 1, object: 1, method: opData}), 0, 0))
	f.Add(append(appendRequest(nil, &request{routed: true, dst: 9, src: 2, ttl: 255, object: 1, method: opData}), 0, 0))
	f.Add(streamMsg(opData, 1, append(binary.AppendUvarint(nil, 0), 0))) // an empty chunk
	n := fuzzNode(f)
	victim := &inStream{node: n, key: streamKey{node: 3, id: 1}, ready: make(chan struct{}, 1), window: initialWindow, ahead: initialWindow}
	n.streams.in[victim.key] = victim
	p := &peer{node: n, id: 2}
	f.Fuzz(func(t *testing.T, b []byte) {
		n.handleStream(p, b)
		victim.mu.Lock()
		defer victim.mu.Unlock()
		if victim.queued != 0 || victim.err != nil {
			t.Fatalf("a message from node 2 changed a stream of node 3")
		}
	})
}

// FuzzHandleStreamBody sends arbitrary stream messages, large enough to be
// read from the connection by HandleBody, to a node over a connection (in
// memory, net.Pipe, as a socket per input would allow a few inputs a
// second) while a Read of a stream of the sender waits with a large buffer
// (so that a chunk may be read straight into it): they may be refused (the
// node closes the connection), but the node never panics nor hangs, the
// Read returns once closed, and a stream of another node is never touched.
// A message is its start, head, followed by pad zero bytes (up to a
// frame), so that inputs stay small and quick to minimise.
func FuzzHandleStreamBody(f *testing.F) {
	data := func(seq uint64, flags byte) []byte {
		return streamMsg(opData, 1, appendDataHeader(nil, seq, flags))
	}
	f.Add(data(0, 0), uint32(5000))
	f.Add(data(0, 0), uint32(200<<10))
	f.Add(data(0, 0), uint32(300<<10)) // beyond the window
	f.Add(data(1, 0), uint32(5000))
	f.Add(data(0, dataEOF), uint32(5000))
	f.Add(append(appendRequest(nil, &request{object: 1, method: opData, metadata: Metadata{{"k", "v"}}}), 0, 0), uint32(0))
	f.Add(streamMsg(opCredit, 1, binary.AppendUvarint(nil, 1024)), uint32(0))
	f.Add([]byte{0x80}, uint32(0))
	n := pipeNode(f, nil)
	if err := n.Register(echoDesc, struct{}{}); err != nil {
		f.Fatal(err)
	}
	f.Add(append(appendRequest(nil, &request{routed: true, dst: n.ID(), src: 1001, ttl: 1, object: 1, method: opData}), 0, 0), uint32(0))
	f.Add(append(appendRequest(nil, &request{routed: true, dst: n.ID() + 1, src: 1001, ttl: 1, object: 1, method: opData}), 0, 0), uint32(0))
	victim := &inStream{node: n, key: streamKey{node: 3, id: 1}, ready: make(chan struct{}, 1), window: initialWindow, ahead: initialWindow}
	n.streams.mu.Lock()
	n.streams.in[victim.key] = victim
	n.streams.mu.Unlock()
	sender := NodeID(1000)
	echo := rawFrame(kindRequest, 77, append(appendRequest(nil, &request{method: 42}), 0x81, 0x61, 's'))
	f.Fuzz(func(t *testing.T, head []byte, pad uint32) {
		size := min(len(head)+int(pad%(transport.MaxFramePayload+1)), transport.MaxFramePayload)
		size = max(size, smallChunk+1) // read by HandleBody
		b := make([]byte, size)
		copy(b, head)
		sender++ // a fresh node each time: the last one's connection may still be closing
		raw := dialRaw(t, n, sender)
		rd, s := importRaw(t, n, sender, 1)
		done := readAsync(t, rd, s, make([]byte, 300<<10))
		// A pipe has no buffer: the write fails if the node closes the
		// connection before reading all of it, which it may.
		raw.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := raw.nc.Write(append(rawFrame(kindStream, 1, b), echo...)); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the node neither read the message nor closed the connection")
		}
		select { // the echo's reply, or the end: the message was handled
		case <-raw.replies:
		case <-raw.closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the node neither answered nor closed the connection")
		}
		rd.Close()
		result(t, done)
		victim.mu.Lock()
		defer victim.mu.Unlock()
		if victim.queued != 0 || victim.err != nil || victim.filled != 0 {
			t.Fatalf("a message from node %s changed a stream of node 3", sender)
		}
	})
}

// FuzzRelease decodes arbitrary release arguments and applies them: a
// holder can only ever lower its own counts.
func FuzzRelease(f *testing.F) {
	enc, _ := newCodec(DecodeLimits{})
	seed, _ := enc.enc.Marshal(&releaseArgs{Refs: []refCount{{Object: 1, Count: 1}}})
	f.Add(seed)
	f.Add([]byte{0x81, 0x81, 0x82, 0x01, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := fuzzNode(t)
		obj := struct{ x int }{1}
		ref, err := n.exportRef(&obj, refsService, 7)
		if err != nil {
			t.Fatal(err)
		}
		n.exportRef(&obj, refsService, 8)
		var args releaseArgs
		if n.codec.dec.Unmarshal(b, &args) != nil {
			return
		}
		n.releaseFrom(8, args.Refs)
		if e, _ := n.exported(ref.Object, 7); e == nil || e.holders[7] != 1 {
			t.Fatalf("node 8's release changed node 7's holding")
		}
	})
}

// FuzzTransformerDecode decodes arbitrary bytes through the transforming
// decoder: errors, never panics.
func FuzzTransformerDecode(f *testing.F) {
	type inner struct{ P *string }
	type outer struct {
		_ struct{} `cbor:",toarray"`
		A []map[string]*string
		B [2]inner
		C *outer
	}
	set := &transformerSet{byType: map[reflect.Type]*marshalTransformer{
		reflect.TypeFor[*string](): {
			t: reflect.TypeFor[*string](), w: reflect.TypeFor[int](),
			out: func(v reflect.Value) (any, error) { return len(*v.Interface().(*string)), nil },
			in: func(w reflect.Value) (reflect.Value, error) {
				s := string(make([]byte, uint(w.Interface().(int))%100))
				return reflect.ValueOf(&s), nil
			},
		},
	}}
	c, _ := newCodec(DecodeLimits{})
	s := "abc"
	good, _ := set.toWire(reflect.ValueOf(outer{A: []map[string]*string{{"k": &s}}, C: &outer{}}), wireCtx{})
	seed, _ := c.enc.Marshal(good)
	f.Add(seed)
	f.Add([]byte{0x83, 0xf6, 0x82, 0x81, 0xf6, 0x81, 0x01, 0xf6})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v outer
		set.fromWire(c.dec, b, reflect.ValueOf(&v).Elem(), 0, wireCtx{})
	})
}

// budgetShape has one of each kind the budget walk looks into.
type budgetShape struct {
	S     string
	B     []byte
	Ints  []int64
	Strs  [][]string
	M     map[string]*budgetShape
	Any   any
	Arr   [2]*int
	When  time.Time
	Ref   codegen.Ref
	Inner struct{ X []uint16 } `cbor:"inner"`
}

// FuzzCheckBudget walks arbitrary input as messages of a few types: it
// never panics, refuses only with wire.ErrBudget (malformed input is left
// to the decoder), and the decoder does not panic on what it lets through.
func FuzzCheckBudget(f *testing.F) {
	c, err := newCodec(DecodeLimits{MaxAmplification: 2})
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := c.enc.Marshal(&budgetShape{S: "s", Ints: []int64{1, 2}, Strs: [][]string{{"", "a"}}, M: map[string]*budgetShape{"k": {}}, Any: []any{1, "x"}})
	f.Add(seed)
	f.Add([]byte{0x82, 0x81, 0x60, 0x82, 0x60, 0x60})
	f.Add([]byte{0xa1, 0x63, 'A', 'n', 'y', 0x82, 0xa0, 0x80})
	types := []reflect.Type{reflect.TypeFor[budgetShape](), reflect.TypeFor[[][]string](), reflect.TypeFor[any](), reflect.TypeFor[releaseArgs]()}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range types {
			err := c.checkBudget(b, typ, nil)
			if err != nil && !errors.Is(err, wire.ErrBudget) {
				t.Fatalf("%v: error %v is not wire.ErrBudget", typ, err)
			}
			if err == nil {
				v := reflect.New(typ)
				c.dec.Unmarshal(b, v.Interface())
			}
		}
	})
}
