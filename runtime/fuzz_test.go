package runtime

import (
	"context"
	"encoding/binary"
	"reflect"
	"testing"
)

// fuzzNode returns a node without a listener for fuzzing handlers directly.
func fuzzNode(t testing.TB) *Node {
	n, err := NewNode(Config{Name: "fuzz", ID: 1})
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
		if e := n.exported(ref.Object, 7); e == nil || e.holders[7] != 1 {
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
