package runtime

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRequestEnvelopeRoundTrip(t *testing.T) {
	tests := []request{
		{method: 1},
		{object: 1 << 40, method: 1<<64 - 1, timeout: 3 * time.Second},
		{method: 7, metadata: Metadata{{"auth", "token"}, {"trace", ""}}},
		{routed: true, dst: 5, src: 9, ttl: 16, method: 3, timeout: time.Nanosecond},
	}
	for _, in := range tests {
		body := []byte{0x83, 1, 2, 3}
		b := append(appendRequest(nil, &in), body...)
		var out request
		if err := parseRequest(b, &out); err != nil {
			t.Fatalf("parseRequest(%+v): %v", in, err)
		}
		if !bytes.Equal(out.body, body) {
			t.Errorf("body = %x, want %x", out.body, body)
		}
		out.body = nil
		if !reflect.DeepEqual(in, out) {
			t.Errorf("round trip: got %+v, want %+v", out, in)
		}
	}
}

func TestResponseEnvelopeRoundTrip(t *testing.T) {
	for _, md := range []Metadata{nil, {{"k", "v"}}} {
		for _, isErr := range []bool{false, true} {
			b := append(appendResponse(nil, isErr, md), 0xf6)
			var r response
			if err := parseResponse(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.isError != isErr || !reflect.DeepEqual(r.metadata, md) || !bytes.Equal(r.body, []byte{0xf6}) {
				t.Errorf("got %+v, want isError %v metadata %v", r, isErr, md)
			}
		}
	}
}

func TestRequestEnvelopeRejects(t *testing.T) {
	long := strings.Repeat("x", maxMetadataBytes+1)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"unknown flag", []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "unknown request flags"},
		{"short method", []byte{0, 0, 1, 2}, "truncated"},
		{"bad object varint", append([]byte{0}, bytes.Repeat([]byte{0xff}, 11)...), "bad object"},
		{"negative timeout", append(appendRequest(nil, &request{method: 1}), 0), ""},
		{"routed without ids", []byte{flagRouted, 0, 0}, "truncated"},
		{"routed zero ids", append([]byte{flagRouted}, make([]byte, 17+1+8)...), "zero node id"},
		{"metadata count zero", append(appendRequest(nil, &request{method: 1})[:9:9], 0), ""},
		{"metadata too big", appendRequest(nil, &request{method: 1, metadata: Metadata{{"k", long}}}), "metadata exceeds"},
		{"metadata truncated", appendRequest(nil, &request{method: 1, metadata: Metadata{{"key", "value"}}})[:14], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r request
			err := parseRequest(tt.in, &r)
			if tt.want == "" {
				return // only: must not panic
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseRequest(%x) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(appendRequest(nil, &request{method: 1}))
	f.Add(appendRequest(nil, &request{object: 3, method: 2, timeout: time.Second, metadata: Metadata{{"a", "b"}}}))
	f.Add(appendRequest(nil, &request{routed: true, dst: 1, src: 2, ttl: 3, method: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r request
		if err := parseRequest(b, &r); err != nil {
			return
		}
		if len(r.body) > len(b) || len(r.metadata) > maxMetadataEntries {
			t.Fatalf("parsed beyond the input: %+v", r)
		}
		// What parses re-encodes to the same envelope.
		again := append(appendRequest(nil, &r), r.body...)
		var r2 request
		if err := parseRequest(again, &r2); err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v", err)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add(appendResponse(nil, false, nil))
	f.Add(appendResponse(nil, true, Metadata{{"x", "y"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r response
		if err := parseResponse(b, &r); err != nil {
			return
		}
		if len(r.body) > len(b) {
			t.Fatalf("body beyond the input")
		}
	})
}
