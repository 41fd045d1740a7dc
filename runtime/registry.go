package runtime

import (
	"fmt"
	"maps"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// Service returns the description of the service registered on the node
// under name, and whether there is one.
func (n *Node) Service(name string) (*codegen.ServiceDesc, bool) {
	svc, ok := n.services.Load().services[name]
	return svc, ok
}

// Implementation returns the implementation registered for svc on the node,
// and whether there is one (registered under svc's name with the same
// methods).
func (n *Node) Implementation(svc *codegen.ServiceDesc) (any, bool) {
	t := n.services.Load()
	reg, ok := t.services[svc.Name]
	if !ok || len(reg.Methods) == 0 {
		return nil, false
	}
	for _, m := range svc.Methods {
		e, ok := t.methods[m.ID]
		if !ok || e.svc != reg {
			return nil, false
		}
	}
	e := t.methods[reg.Methods[0].ID]
	return e.impl, true
}

// Unregister stops serving the service named name: calls that arrive from
// then on fail with ErrUnknownMethod (not run, so a caller may retry them
// elsewhere); calls in progress finish.
func (n *Node) Unregister(name string) error {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	old := n.services.Load()
	svc, ok := old.services[name]
	if !ok || svc == refsService {
		return fmt.Errorf("trellis: Unregister: service %s is not registered on node %s", name, n.cfg.Name)
	}
	t := &serviceTable{methods: maps.Clone(old.methods), services: maps.Clone(old.services)}
	for _, m := range svc.Methods {
		delete(t.methods, m.ID)
	}
	delete(t.services, name)
	n.setServices(t)
	return nil
}
