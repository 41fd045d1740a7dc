// Package runtime is the Trellis node: it serves the services registered on
// it, calls services on other nodes through the proxies that proxygen
// generates, and keeps the connections between them.
//
// A node is created with NewNode, given the cluster's keyring
// (Config.Keyring): only nodes that prove they hold the cluster key connect
// to it, or to whom it connects. TLS with node certificates also
// authenticates; running open is the explicit opt-out Config.Insecure.
//
// Generated code registers implementations
// (RegisterFoo) and creates proxies (NewFooProxy); a proxy is a *Client
// underneath, reachable with ProxyOf. Arguments and results travel as CBOR,
// decoded only into the static types proxygen saw, with decode limits set.
//
// A call carries its deadline (applied on the server) and is cancelled on the
// server when the caller's context is cancelled. A panic in an implementation
// is recovered and returned to the caller as ErrRemotePanic. Errors
// registered with RegisterError and RegisterErrorType keep their identity
// across the wire, so errors.Is and errors.As work on the caller's side.
// Failures of the machinery are typed: see ErrUnreachable, ErrCanceled,
// ErrDeadlineExceeded, ErrRemotePanic, ErrProtocol, ErrUnknownMethod,
// ErrTooLarge (arguments or results over Config.MaxMessageSize: the call
// fails at once, the connection stays up) and ErrClosed, all wrapped in a
// *CallError that names the node and method.
package runtime
