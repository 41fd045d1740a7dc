// Package runtime is the Trellis node: it serves the services registered on
// it, calls services on other nodes through the proxies that proxygen
// generates, and keeps the connections between them.
//
// A node is created with NewNode, given the cluster's keyring
// (Config.Keyring): only nodes that prove they hold the cluster key connect
// to it, or to whom it connects. TLS with node certificates also
// authenticates; running open is the explicit opt-out Config.Insecure.
//
// Proxygen generates, for a service interface Foo, RegisterFoo (serve an
// implementation on a node), NewFooProxy (a Foo whose methods call another
// node) and FooService, the service's description, which the node's
// methods take where they name a service (Node.Register,
// Node.Implementation, AsReference). ProxyOf returns the Client behind a
// proxy, to see its target and set its transformer; Release drops a proxy
// received by reference. Arguments and results travel as CBOR, decoded
// only into the static types proxygen saw, with decode limits set. What
// only generated code calls is in package runtime/codegen.
//
// A call carries its deadline (applied on the server) and is cancelled on the
// server when the caller's context is cancelled. A panic in an implementation
// is recovered and returned to the caller as ErrRemotePanic. Errors
// registered with RegisterError and RegisterErrorType keep their identity
// across the wire, so errors.Is and errors.As work on the caller's side.
// Failures of the machinery are typed: see ErrUnreachable, ErrCanceled,
// ErrDeadlineExceeded, ErrRemotePanic, ErrProtocol, ErrUnknownMethod,
// ErrTooLarge (arguments or results over Config.MaxMessageSize, the
// sender's or the receiver's, whichever is smaller: the call fails at once,
// the connection stays up), ErrNoTransformer (the call
// carries a type that proxygen was told is transformed, and the caller's or
// the server's node has no marshal transformer for it: the call is not
// sent, or not run), ErrRejected (the server's message transformer, set with
// Node.SetInterceptor, refused the call or its reply), ErrTransformFailed
// (a marshal transformer's out or in failed: only that call fails) and
// ErrClosed, all wrapped in a
// *CallError that names the node and method. A node that has gone shows as
// one of three: ErrUnreachable (no connection to it, or the connection was
// lost during the call), ErrShuttingDown (it was closing and refused or
// cancelled the call) or, for a node reached through others, ErrNoRoute
// (a relay has no way on to it); NotSent tells whether the call may have
// run.
//
// A time.Time crosses as RFC 3339 text with nanoseconds (CBOR text,
// untagged): the instant and its offset from UTC are kept, so Equal holds
// between what was sent and what arrives, but not the location's name
// (time.Local or "Europe/Paris" arrives as a fixed zone with that offset
// and no name; a time at offset zero arrives in time.UTC) nor the
// monotonic clock reading, so == between the two
// does not hold, and neither does a comparison of Location. The zero
// time.Time crosses as CBOR null and arrives as the zero time. A
// time.Duration crosses as its integer count of nanoseconds.
//
// An io.Reader (or io.ReadCloser) argument or result crosses as a stream:
// the receiver gets an io.ReadCloser that pulls the sender's bytes with flow
// control; closing it before the end resets the stream (its Reads then fail
// with ErrStreamReset). A stream outlives the call that carried it: the
// call's context governs the call, not the stream, so cancelling it does
// not stop a stream the call returned; closing the stream does, and so
// does the loss of the sender (Reads then fail with ErrStreamReset). A
// sender's reader that is an io.Closer
// is closed when its stream ends or is reset, then possibly while a Read of it is in progress, which Close
// must unblock (as for http.Request.Body): a reader that blocks in Read
// and cannot be closed holds up its node's Close.
package runtime
