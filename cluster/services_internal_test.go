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
		{"too many", long(40), true, 40 - 21},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			block, dropped := encodeServices(tc.svcs, membership.MaxMetaLen-metaOverhead)
			want := ballots{Epoch: 1 << 40, Last: 1 << 40, Led: 1<<40 + 1, Bound: 1<<40 + 2}
			meta := encodeMeta(want, block, []byte("app"))
			if len(meta) > membership.MaxMetaLen+len("app") {
				t.Fatalf("metadata of %d bytes, limit %d", len(meta), membership.MaxMetaLen)
			}
			if dropped != tc.dropped {
				t.Fatalf("dropped %d, want %d", dropped, tc.dropped)
			}
			b, got, app, ok := decodeMeta(meta)
			if !ok || b != want || string(app) != "app" {
				t.Fatalf("decodeMeta: ballots %+v app %q ok %v", b, app, ok)
			}
			wantSvcs := tc.svcs[:len(tc.svcs)-tc.dropped]
			if len(got) != len(wantSvcs) {
				t.Fatalf("decoded %d services, want %d", len(got), len(wantSvcs))
			}
			for i, s := range got {
				name := wantSvcs[i].Name
				if tc.short {
					name = name[strings.LastIndexByte(name, '/')+1:]
				}
				if s.Name != name || s.Hash != wantSvcs[i].Hash {
					t.Fatalf("service %d decoded as %+v, want %s %d", i, s, name, wantSvcs[i].Hash)
				}
				if !s.matches(wantSvcs[i].Name, wantSvcs[i].Hash) || s.matches(wantSvcs[i].Name, wantSvcs[i].Hash+1) {
					t.Fatalf("%+v matches wrongly", s)
				}
			}
		})
	}
}

func TestDecodeMetaRefusesGarbage(t *testing.T) {
	block, _ := encodeServices([]Service{{Name: "a.B", Hash: 1}, {Name: "c.D", Hash: 2}}, 100)
	good := encodeMeta(ballots{Epoch: 7, Last: 7}, block, nil)
	for _, meta := range [][]byte{
		nil, {metaVersion}, {1, 7, 0}, {2, 7, 0}, {metaVersion, 7}, {metaVersion, 7, 7, 0}, {metaVersion, 7, 7, 0, 0},
		{metaVersion, 7, 7, 0, 0, 1}, {metaVersion, 7, 7, 0, 0, 1, 200, 'a'}, {metaVersion, 0x80}, good[:len(good)-1],
	} {
		if _, svcs, _, ok := decodeMeta(meta); ok {
			t.Errorf("decodeMeta(%q) = %v, want a refusal", meta, svcs)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	block, _ := encodeServices([]Service{{Name: "example.com/kv.Store", Hash: 7}}, 100)
	f.Add(encodeMeta(ballots{Epoch: 3, Last: 3, Led: 4, Bound: 5}, block, []byte("x")))
	f.Add([]byte{metaVersion, 1, 1, 0, 0, 255})
	f.Fuzz(func(t *testing.T, meta []byte) {
		bal, svcs, app, ok := decodeMeta(meta)
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
		again := encodeMeta(bal, b, app)
		if bal2, svcs2, app2, ok := decodeMeta(again); !ok || bal2 != bal || len(svcs2) != len(svcs) || string(app2) != string(app) {
			t.Fatalf("%q decoded to %+v, %v, %q, which does not round-trip", meta, bal, svcs, app)
		}
	})
}
