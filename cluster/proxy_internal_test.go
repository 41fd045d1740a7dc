package cluster

import (
	"testing"

	"github.com/trellisrpc/trellis/cluster/clustergen"
)

// The policies that users name in package cluster are those the balancer
// implements: WithPolicy converts one to the other.
func TestPoliciesMatchTheBalancers(t *testing.T) {
	for _, tc := range []struct {
		user Policy
		gen  clustergen.Policy
	}{
		{Nearest, clustergen.Nearest},
		{RoundRobin, clustergen.RoundRobin},
		{LocalFirst, clustergen.LocalFirst},
		{byKey, clustergen.ByKey},
	} {
		var o proxyOptions
		WithPolicy(tc.user)(&o)
		if o.Policy != tc.gen {
			t.Errorf("WithPolicy(%s) sets the balancer's policy %d, want %d", tc.user, o.Policy, tc.gen)
		}
	}
	var o proxyOptions
	ByKey(nil)(&o)
	if o.Policy != clustergen.ByKey || o.Key == nil {
		t.Errorf("ByKey(nil) sets policy %d, key func %v; want ByKey and FirstArgument", o.Policy, o.Key != nil)
	}
	if got := (proxySource{}).Defaults().Retry; got != clustergen.Retry(DefaultRetry) {
		t.Errorf("a proxy's default retry policy is %+v, want DefaultRetry %+v", got, DefaultRetry)
	}
}
