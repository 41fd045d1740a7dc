package memberlist

import (
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"
)

// TestPushPullInterval checks the interval between full state exchanges each
// preset gives memberlist: 60 s for LAN (memberlist's LAN default is 30 s),
// memberlist's own for WAN and Local, and whatever Tune sets in every case.
func TestPushPullInterval(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset Preset
		tune   func(*ml.Config)
		want   time.Duration
	}{
		{"LAN", LAN, nil, 60 * time.Second},
		{"LAN, Tune restores 30 s", LAN, func(c *ml.Config) { c.PushPullInterval = 30 * time.Second }, 30 * time.Second},
		{"LAN, Tune changes something else", LAN, func(c *ml.Config) { c.ProbeInterval = 2 * time.Second }, 60 * time.Second},
		{"WAN", WAN, nil, ml.DefaultWANConfig().PushPullInterval},
		{"Local", Local, nil, ml.DefaultLocalConfig().PushPullInterval},
		{"Local, Tune", Local, func(c *ml.Config) { c.PushPullInterval = time.Minute }, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config{Keys: [][]byte{make([]byte, 32)}, Preset: tc.preset, Tune: tc.tune}.normalize()
			if err != nil {
				t.Fatal(err)
			}
			mc := cfg.memberlistConfig()
			if mc.PushPullInterval != tc.want {
				t.Errorf("PushPullInterval %v, want %v", mc.PushPullInterval, tc.want)
			}
			// The rest of the preset is memberlist's.
			if tc.preset == LAN && tc.tune == nil && mc.ProbeInterval != ml.DefaultLANConfig().ProbeInterval {
				t.Errorf("ProbeInterval %v, want memberlist's LAN %v", mc.ProbeInterval, ml.DefaultLANConfig().ProbeInterval)
			}
		})
	}
	if LANPushPullInterval != 2*ml.DefaultLANConfig().PushPullInterval {
		t.Errorf("LANPushPullInterval %v, want twice memberlist's LAN default %v", LANPushPullInterval, ml.DefaultLANConfig().PushPullInterval)
	}
}
