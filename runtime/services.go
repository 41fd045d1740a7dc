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
