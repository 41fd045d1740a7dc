package runtime

import (
	"context"
	"testing"
)

// A call returned to the pool carries nothing into its next use. A relay
// whose next hop failed used to pool its call with the relay fields set;
// the next ordinary call that got it from the pool had its reply forwarded
// to the old relay's origin instead of its caller, which then waited for it
// forever.
func TestPooledCallsCarryNothingOver(t *testing.T) {
	n, err := NewNode(Config{Name: "pool", ID: 1, Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	cl := n.newCall()
	done := cl.done
	cl.relayFrom, cl.relayID = &peer{}, 7
	cl.results, cl.target, cl.err, cl.info = new(int), 3, ErrClosed, &OutgoingCall{}
	n.putCall(cl)
	if cl.relayFrom != nil || cl.relayID != 0 || cl.results != nil || cl.target != 0 || cl.err != nil || cl.info != nil {
		t.Fatalf("a pooled call keeps %+v", *cl)
	}
	if cl.done != done {
		t.Fatal("a pooled call lost its done channel")
	}
}
