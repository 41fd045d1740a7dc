// Package codegen holds what the code that proxygen generates needs from
// the Trellis runtime and applications never call: the descriptions of
// services and methods (ServiceDesc, MethodDesc), the interfaces through
// which generated proxies send calls (Client) and generated handlers serve
// them (ServerCall), the wire forms of references and streams (Ref,
// StreamRef) and the identifiers and codec options both sides agree on.
//
// Package runtime implements these interfaces and takes these
// descriptions; applications use package runtime and the generated
// RegisterFoo and NewFooProxy functions, and pass the generated FooService
// values where runtime asks for a *ServiceDesc. This package depends on no
// other part of Trellis but package wire and the node identifiers, so
// runtime imports it, never the reverse.
//
// The names here are a contract with proxygen, not an API for users: they
// change with proxygen's output (see ProxygenV2_IfThisIsUndefinedRunGoGenerate).
package codegen
