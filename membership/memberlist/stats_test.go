package memberlist

import (
	"testing"
)

// TestRefusal checks how memberlist's log messages of refused packets and
// streams are counted, with the messages memberlist v0.7.0 writes.
func TestRefusal(t *testing.T) {
	var s stats
	for _, tt := range []struct {
		msg  string
		want string // the counter, or "" for none
	}{
		{"memberlist: Decrypt packet failed: No installed keys could decrypt the message from=127.0.0.1:7946", "forged"},
		{"memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:7946", "forged"},
		{"memberlist: failed to receive: EOF from=127.0.0.1:7946", ""},
		{"memberlist: discarding packet with unacceptable label \"other\": from=127.0.0.1:7946", "foreign"},
		{"memberlist: discarding stream with unacceptable label \"other\": from=127.0.0.1:7946", "foreign"},
		{"memberlist: Failed to decode ping request: msgpack decode error from=127.0.0.1:7946", "malformed"},
		{"memberlist: Got invalid checksum for UDP packet: 1, 2", "malformed"},
		{"memberlist: msg type (99) not supported from=127.0.0.1:7946", "malformed"},
		{"memberlist: Suspect 0123456789abcdef has failed, no acks received", ""},
		{"memberlist: Initiating push/pull sync with: 127.0.0.1:7946", ""},
		{"Decrypt packet failed", ""},
	} {
		before := map[string]uint64{"forged": s.forged.Load(), "foreign": s.foreign.Load(), "malformed": s.malformed.Load()}
		if c := s.refusal(tt.msg); c != nil {
			c.Add(1)
		}
		for name, after := range map[string]uint64{"forged": s.forged.Load(), "foreign": s.foreign.Load(), "malformed": s.malformed.Load()} {
			want := before[name]
			if name == tt.want {
				want++
			}
			if after != want {
				t.Errorf("%q: %s = %d, want %d", tt.msg, name, after, want)
			}
		}
	}
}
