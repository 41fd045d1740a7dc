package membership

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestOrderingAndOldest(t *testing.T) {
	t0 := time.Unix(100, 0)
	ms := []Member{
		{ID: 5, Name: "young", JoinTime: t0.Add(time.Second), State: StateAlive},
		{ID: 9, Name: "old-big-id", JoinTime: t0, State: StateAlive},
		{ID: 3, Name: "old-small-id", JoinTime: t0, State: StateSuspected},
		{ID: 1, Name: "oldest-but-failed", JoinTime: t0.Add(-time.Hour), State: StateFailed},
	}
	if o, ok := Oldest(ms); !ok || o.Name != "old-small-id" {
		t.Fatalf("Oldest = %v %v, want old-small-id (suspected members still lead)", o, ok)
	}
	SortMembers(ms)
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "oldest-but-failed,old-small-id,old-big-id,young" {
		t.Fatalf("order = %s", got)
	}
	if _, ok := Oldest([]Member{{State: StateLeft}}); ok {
		t.Fatal("Oldest found a live member among none")
	}
}

func TestConfigValidation(t *testing.T) {
	key := [][]byte{[]byte("0123456789abcdef")}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Keys: key}, true},
		{"no key", Config{}, false},
		{"short key", Config{Keys: [][]byte{[]byte("short")}}, false},
		{"long name", Config{Keys: key, Name: strings.Repeat("x", MaxNameLen+1)}, false},
		{"long meta", Config{Keys: key, Meta: make([]byte, MaxMetaLen+1)}, false},
		{"unicast group", Config{Keys: key, Group: netip.MustParseAddrPort("10.0.0.1:7946")}, false},
		{"no way to find anyone", Config{Keys: key, DisableMulticast: true}, false},
		{"seeds only", Config{Keys: key, DisableMulticast: true, Seeds: []string{"10.0.0.1"}}, true},
		{"suspect too early", Config{Keys: key, SuspectAfter: DefaultInterval}, false},
		{"fail too early", Config{Keys: key, FailAfter: DefaultSuspectAfter}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.normalize()
			if (err == nil) != tc.ok {
				t.Fatalf("normalize: %v, want ok=%v", err, tc.ok)
			}
			if err == nil && tc.name == "defaults" {
				if c.Interval != 200*time.Millisecond || c.SuspectAfter != 800*time.Millisecond || c.FailAfter != 1200*time.Millisecond {
					t.Fatalf("default timing %v %v %v", c.Interval, c.SuspectAfter, c.FailAfter)
				}
				if c.Group.String() != "239.77.77.77:7946" || c.ID == 0 || c.BindAddr != ":0" {
					t.Fatalf("defaults: group %v id %v bind %q", c.Group, c.ID, c.BindAddr)
				}
			}
		})
	}
}
