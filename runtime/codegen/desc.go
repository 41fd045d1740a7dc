package codegen

import (
	"context"
	"hash/fnv"
	"reflect"
)

// ProxygenV2_IfThisIsUndefinedRunGoGenerate is referenced by every file that
// proxygen generates. A runtime that can no longer run that code drops the
// constant, so stale generated code fails to compile with a message that says
// what to do: run `go generate ./...` with the matching proxygen.
//
//lint:ignore ST1003 the name is the compiler's error message.
const ProxygenV2_IfThisIsUndefinedRunGoGenerate = 2

// A ServiceDesc describes a service interface to the runtime. Proxygen
// generates one per interface (FooService for interface Foo); users do not
// write them by hand, but pass them where the runtime asks for a service
// (runtime.Node.Register, runtime.AsReference, cluster.Cluster.Serving).
type ServiceDesc struct {
	// Name is the interface's package path and name, e.g. "example.com/kv.Store".
	Name string
	// ID is ServiceID(Name); references carry it so that a reference is
	// refused when it arrives as the wrong interface.
	ID uint64
	// Methods lists the interface's methods.
	Methods []*MethodDesc
	// NewProxy returns the generated proxy (a value of the interface) that
	// calls through c. The runtime uses it to make proxies: those of
	// runtime.NewProxy (which generated NewFooProxy functions call), of
	// references received, and of cluster proxies' members.
	NewProxy func(c Client) any
}

// A MethodDesc describes one method of a service. It is used by pointer
// only: the runtime keys its per-method state by it.
type MethodDesc struct {
	// Name is the method's name, e.g. "Get".
	Name string
	// Signature is the method's signature as proxygen saw it, with packages
	// spelt out in full; it is part of ID and appears in error messages.
	Signature string
	// ID is MethodID(service name, Name, Signature). A caller and a server
	// built from different signatures therefore disagree on the ID, and the
	// call fails with runtime.ErrUnknownMethod instead of decoding into the
	// wrong types.
	ID uint64
	// Handler decodes the arguments of a call, invokes impl (a value of the
	// service's interface type) and replies with the results, or an error.
	Handler Handler
	// Flags say what the method allows: whether a call that may have run
	// can be made again (cluster proxies read them).
	Flags MethodFlags
	// Transformed lists the types named to proxygen with -transformed that
	// the method's arguments or results hold (at the top level or nested
	// in slices, arrays, maps, pointers and struct fields), each as it
	// appears there: T, or *T when it is held by pointer. Such a value
	// cannot cross as it is: a node refuses to make or serve a call of the
	// method unless it has a marshal transformer for each of them
	// (runtime.RegisterTransformer, for the type or, for *T, for T). Nil
	// for most methods.
	Transformed []reflect.Type
}

// MethodFlags say what a method allows. Proxygen writes them.
type MethodFlags uint8

const (
	// Idempotent: the method is declared idempotent (a
	// "//trellis:idempotent" line in its doc comment), so a call that
	// failed in the machinery (unreachable, shutting down, overloaded, no
	// route) may be made again even if it may have run.
	Idempotent MethodFlags = 1 << iota
	// OneShot: a call cannot be made twice (it passes a stream, whose
	// source is closed when a call fails): it is never made again.
	OneShot
)

// A Handler serves one method: it decodes the arguments with call.Decode,
// calls the implementation and encodes the results with call.Reply (a
// method whose only result is an error does not reply), or returns the
// error. Proxygen writes handlers.
type Handler func(ctx context.Context, impl any, call ServerCall) error

// ServiceID returns the identifier of the service named name (package path
// and interface name): the 64-bit FNV-1a hash of the name.
func ServiceID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// MethodID returns the identifier of a method: the 64-bit FNV-1a hash of
// "service.method signature". It is stable when methods are reordered in the
// source and changes when the signature changes.
func MethodID(service, method, signature string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(service))
	h.Write([]byte{'.'})
	h.Write([]byte(method))
	h.Write([]byte{' '})
	h.Write([]byte(signature))
	return h.Sum64()
}
