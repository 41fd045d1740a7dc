package cluster

import (
	"fmt"
	"slices"
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
		{"full names fit", long(9), false, 0},
		{"short names", long(20), true, 0},
		{"too many", long(40), true, 40 - 23},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			meta, dropped := encodeServices(tc.svcs)
			if len(meta) > membership.MaxMetaLen {
				t.Fatalf("metadata of %d bytes, limit %d", len(meta), membership.MaxMetaLen)
			}
			if dropped != tc.dropped {
				t.Fatalf("dropped %d, want %d", dropped, tc.dropped)
			}
			got, err := decodeServices(meta)
			if err != nil {
				t.Fatal(err)
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

func TestDecodeServicesRefusesGarbage(t *testing.T) {
	good, _ := encodeServices([]Service{{Name: "a.B", Hash: 1}, {Name: "c.D", Hash: 2}})
	for _, meta := range [][]byte{
		{'T'}, {'X', 1, 0}, {'T', 2, 0}, {'T', 1, 1}, {'T', 1, 1, 200, 'a'},
		good[:len(good)-1], append(slices.Clone(good), 0),
	} {
		if svcs, err := decodeServices(meta); err == nil {
			t.Errorf("decodeServices(%q) = %v, want an error", meta, svcs)
		}
	}
}

func FuzzDecodeServices(f *testing.F) {
	good, _ := encodeServices([]Service{{Name: "example.com/kv.Store", Hash: 7}})
	f.Add(good)
	f.Add([]byte{'T', 1, 255})
	f.Fuzz(func(t *testing.T, meta []byte) {
		svcs, err := decodeServices(meta)
		if err != nil {
			return
		}
		again, dropped := encodeServices(svcs)
		if dropped == 0 && len(meta) > 0 && string(again) != string(meta) && len(meta) <= membership.MaxMetaLen {
			// Names that would be shortened re-encode differently; only
			// compare when they are plainly short.
			for _, s := range svcs {
				if strings.Contains(s.Name, "/") {
					return
				}
			}
			t.Fatalf("%q decoded to %v, which encodes as %q", meta, svcs, again)
		}
	})
}
