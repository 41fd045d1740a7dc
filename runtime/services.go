package runtime

import "slices"

// Services returns the names of the services registered on the node, sorted
// (Trellis's own control-plane services included).
func (n *Node) Services() []string {
	t := n.services.Load()
	names := make([]string, 0, len(t.services))
	for name := range t.services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ServicesChanged returns a channel that is closed the next time a service
// is registered on the node or unregistered from it. A program that
// advertises what its node serves (to a service registry, a load balancer,
// a health check) takes the channel, reads Services, and waits on the
// channel before it reads them again, so that no change goes unseen
// between the two:
//
//	for {
//		changed := node.ServicesChanged()
//		advertise(node.Services())
//		<-changed
//	}
//
// Package cluster advertises a member's services to the others this way.
func (n *Node) ServicesChanged() <-chan struct{} {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	if n.svcChanged == nil {
		n.svcChanged = make(chan struct{})
	}
	return n.svcChanged
}

// setServices installs t as the node's service table and wakes whoever
// waits for a change (see ServicesChanged). Callers hold regMu.
func (n *Node) setServices(t *serviceTable) {
	n.services.Store(t)
	if n.svcChanged != nil {
		close(n.svcChanged)
		n.svcChanged = nil
	}
}
