package cluster

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/trellisrpc/trellis/membership"
)

func TestServicesMetaRoundTrip(t *testing.T) {
	long := func(n int) []Service {
		var out []Service
		for i := range n {
			out = append(out, Service{Name: fmt.Sprintf("example.com/some/rather/long/path/pkg%02d.Service", i), Hash: uint64(i) * 0x9e3779b97f4a7c15})
		}
		return out
	}
	tests := []struct {
		name    string
		svcs    []Service
		short   bool // names shortened to the last path element
		dropped int
	}{
		{"none", nil, false, 0},
		{"one", []Service{{Name: "example.com/kv.Store", Hash: 42}}, false, 0},
		{"full names fit", long(8), false, 0},
		{"short names", long(20), true, 0},
		{"too many", long(40), true, 40 - 22},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			block, dropped := encodeServices(tc.svcs, membership.MaxMetaLen-metaOverhead)
			meta := encodeMeta(1<<40, block, []byte("app"))
			if len(meta) > membership.MaxMetaLen+len("app") {
				t.Fatalf("metadata of %d bytes, limit %d", len(meta), membership.MaxMetaLen)
			}
			if dropped != tc.dropped {
				t.Fatalf("dropped %d, want %d", dropped, tc.dropped)
			}
			epoch, got, app, ok := decodeMeta(meta)
			if !ok || epoch != 1<<40 || string(app) != "app" {
				t.Fatalf("decodeMeta: epoch %d app %q ok %v", epoch, app, ok)
			}
			want := tc.svcs[:len(tc.svcs)-tc.dropped]
			if len(got) != len(want) {
				t.Fatalf("decoded %d services, want %d", len(got), len(want))
			}
			for i, s := range got {
				name := want[i].Name
				if tc.short {
					name = name[strings.LastIndexByte(name, '/')+1:]
				}
				if s.Name != name || s.Hash != want[i].Hash {
					t.Fatalf("service %d decoded as %+v, want %s %d", i, s, name, want[i].Hash)
				}
				if !s.matches(want[i].Name, want[i].Hash) || s.matches(want[i].Name, want[i].Hash+1) {
					t.Fatalf("%+v matches wrongly", s)
				}
			}
		})
	}
}

func TestDecodeMetaRefusesGarbage(t *testing.T) {
	block, _ := encodeServices([]Service{{Name: "a.B", Hash: 1}, {Name: "c.D", Hash: 2}}, 100)
	good := encodeMeta(7, block, nil)
	for _, meta := range [][]byte{
		nil, {metaVersion}, {1, 7, 0}, {metaVersion, 7}, {metaVersion, 7, 1}, {metaVersion, 7, 1, 200, 'a'},
		{metaVersion, 0x80}, good[:len(good)-1],
	} {
		if _, svcs, _, ok := decodeMeta(meta); ok {
			t.Errorf("decodeMeta(%q) = %v, want a refusal", meta, svcs)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	block, _ := encodeServices([]Service{{Name: "example.com/kv.Store", Hash: 7}}, 100)
	f.Add(encodeMeta(3, block, []byte("x")))
	f.Add([]byte{metaVersion, 1, 255})
	f.Fuzz(func(t *testing.T, meta []byte) {
		epoch, svcs, app, ok := decodeMeta(meta)
		if !ok {
			return
		}
		var b []byte
		if len(svcs) > 0 {
			b = []byte{byte(len(svcs))}
			for _, s := range svcs {
				b = append(b, byte(len(s.Name)))
				b = append(b, s.Name...)
				b = binary.LittleEndian.AppendUint64(b, s.Hash)
			}
		}
		again := encodeMeta(epoch, b, app)
		if _, svcs2, app2, ok := decodeMeta(again); !ok || len(svcs2) != len(svcs) || string(app2) != string(app) {
			t.Fatalf("%q decoded to %d, %v, %q, which does not round-trip", meta, epoch, svcs, app)
		}
	})
}
