package gen

import (
	"go/token"
	"go/types"
	"slices"
	"strconv"
)

// A passing says how a parameter or a result crosses the network.
type passing int

const (
	// byValue values are encoded with CBOR as they are.
	byValue passing = iota
	// byReference values are interfaces of the -type set: what crosses is a
	// codegen.Ref to the object, which stays where it is.
	byReference
	// asStream values are io.Readers (or io.ReadClosers): what crosses is a
	// codegen.StreamRef, and the bytes follow as a stream.
	asStream
)

// A service is one interface of the -type set, with everything the
// generator needs to write its code.
type service struct {
	obj      *types.TypeName
	name     string // the interface's name, e.g. "Store"
	fullName string // package path and name, e.g. "example.com/kv.Store"
	id       uint64 // codegen.ServiceID(fullName)
	methods  []*method

	// Generated identifiers.
	desc     string // StoreService
	register string // RegisterStore
	proxy    string // StoreProxy
	newProxy string // NewStoreProxy
	fromRef  string // storeFromRef
	// cluster reports whether a cluster proxy is generated, named
	// clusterProxy and made by newClusterProxy.
	cluster         bool
	clusterProxy    string // StoreClusterProxy
	newClusterProxy string // NewStoreClusterProxy
	prefix          string // store: the prefix of per-method identifiers

	// byRef reports whether a method of the set passes this interface by
	// reference, which needs the fromRef helper.
	byRef bool
	// methodsInInit reports whether the desc's methods are set by init
	// rather than in its declaration: they are when the service's handlers
	// lead back to its own desc through references, which Go would reject
	// as an initialization cycle.
	methodsInInit bool
}

// A method is one method of a service.
type method struct {
	name      string
	signature string // the signature with full package paths and no names
	id        uint64 // codegen.MethodID(service, name, signature)
	params    []*value
	results   []*value
	variadic  bool
	// idempotent reports whether the method's doc comment has a
	// "//trellis:idempotent" line: cluster proxies may retry it after a
	// failure even if it may have run.
	idempotent bool
	// oneShot reports whether a call cannot be made twice (it passes a
	// stream), so cluster proxies never retry it.
	oneShot bool
	// sourceNames are the parameters' names in the source ("" or "_" for
	// unnamed ones), from which field and local names are derived.
	sourceNames []string

	// Generated identifiers.
	desc        string // storeGetMethod
	handler     string // storeGetHandler
	argsType    string // storeGetArgs; unused when params is empty
	resultsType string // storeGetResults; unused when results is empty
	callType    string // storeGetCall: arguments and results, recycled (when the method has both)
	callPool    string // storeGetCalls: the pool of callType

	// argsCodec and resultsCodec report whether the wire structs get a
	// generated CBOR codec (see codecWriter).
	argsCodec, resultsCodec bool
}

// A value is a parameter (other than the context) or a result (other than
// the error) of a method.
type value struct {
	typ     types.Type // as declared; for a variadic parameter, the slice type
	passing passing
	ref     *service // the service of a byReference value

	field string // its field in the args or results struct: Key, A1, R0...
	local string // its name in generated code: a proxy parameter, or r0... for results
	wire  string // for references and streams, the local that holds the wire form

	// transformed are the -transformed types the value holds, as it holds
	// them (T, or *T), which its method's desc lists.
	transformed []types.Type
}

// transformed returns the -transformed types that m's arguments and results
// hold, each once, in the order they appear.
func (m *method) transformed() []types.Type {
	var ts []types.Type
	for _, v := range slices.Concat(m.params, m.results) {
		for _, t := range v.transformed {
			if !slices.ContainsFunc(ts, func(have types.Type) bool { return types.Identical(have, t) }) {
				ts = append(ts, t)
			}
		}
	}
	return ts
}

// generated returns the package-level identifiers that the code for s
// declares, each with the thing it stands for (for messages).
func (s *service) generated() []string {
	names := []string{s.desc, s.register, s.proxy, s.newProxy}
	if s.byRef {
		names = append(names, s.fromRef)
	}
	if s.cluster {
		names = append(names, s.clusterProxy, s.newClusterProxy)
	}
	for _, m := range s.methods {
		names = append(names, m.desc, m.handler)
		if len(m.params) > 0 {
			names = append(names, m.argsType)
		}
		if len(m.results) > 0 {
			names = append(names, m.resultsType)
		}
		if len(m.params) > 0 && len(m.results) > 0 {
			names = append(names, m.callType, m.callPool)
		}
	}
	return names
}

// nameService fills in the generated identifiers of s.
func nameService(s *service) {
	upper := upperFirst(s.name)
	s.prefix = lowerPrefix(s.name)
	if token.IsExported(s.name) {
		s.desc = s.name + "Service"
		s.register = "Register" + s.name
		s.proxy = s.name + "Proxy"
		s.newProxy = "New" + s.name + "Proxy"
		s.clusterProxy = s.name + "ClusterProxy"
		s.newClusterProxy = "New" + s.name + "ClusterProxy"
	} else {
		s.desc = s.name + "Service"
		s.register = "register" + upper
		s.proxy = s.name + "Proxy"
		s.newProxy = "new" + upper + "Proxy"
		s.clusterProxy = s.name + "ClusterProxy"
		s.newClusterProxy = "new" + upper + "ClusterProxy"
	}
	s.fromRef = s.prefix + "FromRef"
	for _, m := range s.methods {
		base := s.prefix + m.name
		m.desc = base + "Method"
		m.handler = base + "Handler"
		m.argsType = base + "Args"
		m.resultsType = base + "Results"
		m.callType = base + "Call"
		m.callPool = base + "Calls"
	}
}

// nameValues fills in the field and local names of m's values. reserved
// holds the identifiers that generated code refers to, which locals must
// not shadow; it is not modified.
func nameValues(m *method, reserved nameSet) {
	for i, f := range fieldNames(m.sourceNames) {
		m.params[i].field = f
	}
	taken := nameSet{}
	for k := range reserved {
		taken[k] = true
	}
	for i, r := range m.results {
		r.field = "R" + strconv.Itoa(i)
		r.local = taken.fresh("r"+strconv.Itoa(i), "r"+strconv.Itoa(i)+"_")
	}
	for i, p := range m.params {
		p.local = taken.fresh(m.sourceNames[i], "a"+strconv.Itoa(i+1))
	}
	for _, v := range slices.Concat(m.params, m.results) {
		if v.passing != byValue {
			v.wire = taken.fresh(v.local+"Ref", v.local+"Ref_")
		}
	}
}

// findInitCycles sets methodsInInit on every service whose handlers lead
// back to its own desc: a handler that passes service T by reference refers
// to TService, whose declaration refers to T's handlers, and so on.
func findInitCycles(services []*service) {
	edges := map[*service][]*service{}
	for _, s := range services {
		for _, m := range s.methods {
			for _, v := range slices.Concat(m.params, m.results) {
				if v.ref != nil {
					edges[s] = append(edges[s], v.ref)
				}
			}
		}
	}
	for _, s := range services {
		seen := map[*service]bool{}
		stack := append([]*service(nil), edges[s]...)
		for len(stack) > 0 {
			t := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if t == s {
				s.methodsInInit = true
				break
			}
			if !seen[t] {
				seen[t] = true
				stack = append(stack, edges[t]...)
			}
		}
	}
}
