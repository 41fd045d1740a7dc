package clustergen

import (
	"fmt"
	"math"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

// owners maps every key to the member a by-key balancer picks among ids,
// and checks that Owner (cluster.KeyOwner) names the same member.
func owners(t *testing.T, ids []nodeid.ID, keys []string) map[string]nodeid.ID {
	t.Helper()
	b := &Balancer[any]{opts: Options{Policy: ByKey}}
	var list []*target[any]
	var members []Member
	for _, id := range ids {
		m := Member{ID: id}
		list = append(list, &target[any]{member: m, score: mix(uint64(id))})
		members = append(members, m)
	}
	out := make(map[string]nodeid.ID, len(keys))
	for _, k := range keys {
		out[k] = b.pickFrom(list, hashKey(k), &tried{}).member.ID
		if o, ok := Owner(members, k); !ok || o.ID != out[k] {
			t.Fatalf("key %s: the balancer picks %s, Owner names %s", k, out[k], o.ID)
		}
	}
	return out
}

func TestByKeyMovesOnlyTheDepartedMembersKeys(t *testing.T) {
	const members, nkeys = 8, 10000
	ids := make([]nodeid.ID, members)
	for i := range ids {
		ids[i] = nodeid.New()
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	before := owners(t, ids, keys)
	// Stable: the same key goes to the same member every time.
	if again := owners(t, ids, keys); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("by-key routing is not stable")
	}
	perMember := map[nodeid.ID]int{}
	for _, id := range before {
		perMember[id]++
	}
	for _, id := range ids {
		if n := perMember[id]; math.Abs(float64(n)-nkeys/members) > 0.2*nkeys/members {
			t.Errorf("member %s owns %d keys, expected about %d", id, n, nkeys/members)
		}
	}

	gone := ids[3]
	after := owners(t, append(ids[:3:3], ids[4:]...), keys)
	moved := 0
	for _, k := range keys {
		if after[k] != before[k] {
			moved++
			if before[k] != gone {
				t.Fatalf("key %s moved from %s, which is still a member", k, before[k])
			}
		} else if before[k] == gone {
			t.Fatalf("key %s stayed on the departed member", k)
		}
	}
	share := float64(moved) / nkeys
	t.Logf("%d members, %d keys: %d moved when one member departed (%.3f, ideal %.3f)", members, nkeys, moved, share, 1.0/members)
	if math.Abs(share-1.0/members) > 0.03 {
		t.Fatalf("moved share %.3f, want about %.3f", share, 1.0/members)
	}
}

func TestOwnerOfNoMembers(t *testing.T) {
	if m, ok := Owner(nil, "k"); ok {
		t.Fatalf("Owner of no members: %+v, true", m)
	}
}
