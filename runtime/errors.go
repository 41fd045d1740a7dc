package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
)

// Errors of the machinery. Calls return them wrapped in a *CallError; test
// them with errors.Is.
var (
	// ErrUnreachable: no connection to the target node, or it was lost
	// before the reply arrived.
	ErrUnreachable = errors.New("trellis: node unreachable")
	// ErrNoRoute: the target is not a neighbour and no route leads to it
	// (with a RouteWaiter router, none appeared while the call waited).
	ErrNoRoute = errors.New("trellis: no route to node")
	// ErrCanceled: the caller cancelled the call. errors.Is(err,
	// context.Canceled) also holds.
	ErrCanceled error = ctxError{"trellis: call cancelled", context.Canceled}
	// ErrDeadlineExceeded: the call's deadline passed, on either side.
	// errors.Is(err, context.DeadlineExceeded) also holds.
	ErrDeadlineExceeded error = ctxError{"trellis: call deadline exceeded", context.DeadlineExceeded}
	// ErrRemotePanic: the implementation panicked; the server recovered and
	// keeps serving.
	ErrRemotePanic = errors.New("trellis: remote implementation panicked")
	// ErrProtocol: a peer sent something that breaks the protocol, or
	// arguments or results that could not be decoded. The node closes the
	// connection it came on: the other calls in flight on it fail with
	// ErrUnreachable. A value that a marshal transformer refused is not
	// one: it was well-formed, and fails only its call (ErrTransformFailed).
	ErrProtocol = errors.New("trellis: protocol error")
	// ErrUnknownMethod: the server has no such service or method, or a
	// different signature for it (the two sides were generated from
	// different interfaces).
	ErrUnknownMethod = errors.New("trellis: unknown method")
	// ErrClosed: the local node is closed or closing.
	ErrClosed = errors.New("trellis: node closed")
	// ErrShuttingDown: the remote node is shutting down. Either it refused
	// the call without running it (NotSent holds), or it was running the
	// call when the deadline of its Close passed and cancelled it (the
	// call may have run in part: NotSent does not hold).
	ErrShuttingDown = errors.New("trellis: remote node shutting down")
	// ErrOverloaded: the remote node has Config.MaxConcurrentCalls calls of
	// this caller in progress (or a relay on the way has as many from its
	// neighbour toward other nodes), or holds this caller's share of its memory
	// (Config.MaxPeerMemory) in arguments and unread replies, and refused
	// one more call; or it ran the call but could not hold its reply for
	// this caller, which then reads its replies too slowly (the error says
	// so, and CallError.NotSent is false).
	ErrOverloaded = errors.New("trellis: remote node overloaded")
	// ErrTooLarge: the encoded arguments (refused by the caller's node,
	// before sending) or results (refused by the server's node, which
	// sends this error instead) exceed Config.MaxMessageSize, the sender's
	// or the receiver's, whichever is smaller (the error says which). The
	// side that refused logs it; the connection stays up.
	ErrTooLarge = errors.New("trellis: message too large")
	// ErrNoTransformer: the method's arguments or results hold a type that
	// proxygen was told crosses through a marshal transformer
	// (-transformed), and the caller's node (before sending) or the
	// server's node (before decoding, without running the call) has no
	// transformer registered for it (RegisterTransformer). NotSent holds;
	// the connection stays up. The error names the type, the method and
	// the node that lacks the transformer.
	ErrNoTransformer = errors.New("trellis: no marshal transformer")
	// ErrRejected: the remote node's message transformer (set with
	// Node.SetInterceptor) returned an error: its Incoming for the call,
	// which was then not run (NotSent holds), or its Outgoing for the
	// call's reply, the call having run (NotSent does not hold). The
	// transformer's message follows, and a registered error keeps its
	// identity (errors.Is and errors.As see it, see RegisterError). The
	// connection stays up.
	ErrRejected = errors.New("trellis: rejected by the node's message transformer")
	// ErrTransformFailed: a marshal transformer (RegisterTransformer)
	// returned an error or panicked: the caller's out on an argument (the
	// call is not sent: NotSent holds), the server's in on an argument (the
	// call is not run, but its arguments arrived: NotSent does not hold),
	// the server's out on a result or the caller's in on a result (the call
	// ran). The error names the type, the node and, through its CallError,
	// the method; the transformer's message follows. The connection stays
	// up: only the call fails.
	ErrTransformFailed = errors.New("trellis: marshal transformer failed")
)

// ctxError is a machinery error that is also its context counterpart.
type ctxError struct {
	msg string
	ctx error
}

func (e ctxError) Error() string        { return e.msg }
func (e ctxError) Is(target error) bool { return target == e.ctx }

// A CallError is the error of a failed remote call: the node and method, and
// what went wrong (a machinery error, or a *RemoteError from the
// implementation).
type CallError struct {
	Node   nodeid.ID
	Method string // "example.com/kv.Store.Get"
	Err    error

	notSent bool // see NotSent
}

// Error names the method, the node and the cause.
func (e *CallError) Error() string {
	return fmt.Sprintf("call %s on node %s: %v", e.Method, e.Node, e.Err)
}

// Unwrap returns the cause.
func (e *CallError) Unwrap() error { return e.Err }

// A RemoteError is an error returned by a remote implementation. When the
// error was registered on this node (RegisterError, RegisterErrorType), Err
// is the registered sentinel or the decoded typed value, so errors.Is and
// errors.As see it; otherwise only the message crosses.
type RemoteError struct {
	Name    string // the registered name, or ""
	Message string // the remote err.Error()
	Err     error  // the local counterpart, or nil
}

// Error returns the remote error's message.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the local counterpart of the remote error, if registered.
func (e *RemoteError) Unwrap() error { return e.Err }

// wire error codes.
const (
	codeApp uint8 = iota
	codePanic
	codeUnknownMethod
	codeBadRequest
	codeCanceled
	codeDeadline
	codeShuttingDown
	codeUnknownObject
	codeOverloaded
	codeInternal
	codeNoRoute
	codeUnreachable
	codeRefused // shutting down: the call was not started
	codeTooLarge
	codeReplyDropped    // the call ran, but its reply was over the caller's share of the node's memory
	codeNoTransformer   // the server has no marshal transformer for a type the method carries
	codeRejectedCall    // the server's message transformer refused the call (Incoming): not run
	codeRejectedReply   // the server's message transformer refused the call's reply (Outgoing): the call ran
	codeTransformFailed // a marshal transformer of the server failed (in on an argument, out on a result)
)

// codeBadRef: a call or release named an object of the server that the
// caller was not sent (see ErrBadRef), or a routed call came through a
// link that its source makes implausible. Numbered apart from the list
// above, which grows.
const codeBadRef uint8 = 32

// badRefError marks a handler's error as a refused reference (codeBadRef).
type badRefError struct{ err error }

func (e badRefError) Error() string { return e.err.Error() }
func (e badRefError) Unwrap() error { return e.err }

// wireError is the CBOR form of an error reply.
type wireError struct {
	_       struct{} `cbor:",toarray"`
	Code    uint8
	Name    string
	Message string
	Data    []byte // CBOR of a registered error type's value
}

// errorRegistry maps registered errors to names and back.
type errorRegistry struct {
	mu        sync.RWMutex
	sentinels map[string]error
	types     map[string]reflect.Type // value type implementing error
	order     []string                // registration order, for matching
}

// RegisterError registers a sentinel error under a name shared by the nodes
// that exchange it: an implementation returning an error for which
// errors.Is(err, sentinel) holds makes errors.Is(callErr, sentinel) hold on
// the caller, when both nodes registered it.
func RegisterError(n *Node, name string, sentinel error) error {
	if sentinel == nil || name == "" {
		return errors.New("trellis: RegisterError needs a name and a non-nil error")
	}
	r := &n.errors
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sentinels[name]; dup || r.types[name] != nil {
		return fmt.Errorf("trellis: RegisterError: name %q already registered", name)
	}
	if r.sentinels == nil {
		r.sentinels = make(map[string]error)
	}
	r.sentinels[name] = sentinel
	r.order = append(r.order, name)
	return nil
}

// RegisterErrorType registers an error type E under a name: an error for
// which errors.As(err, &e) holds crosses the wire with e's exported fields
// (encoded as CBOR), and errors.As(callErr, &e) holds on the caller.
func RegisterErrorType[E error](n *Node, name string) error {
	if name == "" {
		return errors.New("trellis: RegisterErrorType needs a name")
	}
	t := reflect.TypeFor[E]()
	if t.Kind() == reflect.Interface {
		return fmt.Errorf("trellis: RegisterErrorType[%v]: need a concrete type", t)
	}
	r := &n.errors
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sentinels[name]; dup || r.types[name] != nil {
		return fmt.Errorf("trellis: RegisterErrorType: name %q already registered", name)
	}
	if r.types == nil {
		r.types = make(map[string]reflect.Type)
	}
	r.types[name] = t
	r.order = append(r.order, name)
	return nil
}

// encode turns an implementation's error into its wire form.
func (r *errorRegistry) encode(c *codec, err error) wireError {
	w := wireError{Code: codeApp, Message: err.Error()}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, name := range r.order {
		if s, ok := r.sentinels[name]; ok {
			if errors.Is(err, s) {
				w.Name = name
				return w
			}
			continue
		}
		t := r.types[name]
		target := reflect.New(t)
		if errors.As(err, target.Interface()) {
			data, merr := c.enc.Marshal(target.Elem().Interface())
			if merr != nil {
				continue
			}
			w.Name, w.Data = name, data
			return w
		}
	}
	return w
}

// decode turns an application error's wire form back into an error.
func (r *errorRegistry) decode(c *codec, w *wireError) error {
	re := &RemoteError{Name: w.Name, Message: w.Message}
	if w.Name == "" {
		return re
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.sentinels[w.Name]; ok {
		re.Err = s
		return re
	}
	if t, ok := r.types[w.Name]; ok {
		v := reflect.New(t)
		if c.unmarshal(w.Data, v.Interface()) == nil {
			re.Err, _ = v.Elem().Interface().(error)
		}
	}
	return re
}

// machineryError maps a non-application wire error to its typed error.
func machineryError(w *wireError) error {
	var base error
	switch w.Code {
	case codePanic:
		base = ErrRemotePanic
	case codeUnknownMethod:
		base = ErrUnknownMethod
	case codeUnknownObject:
		base = ErrReleased
	case codeBadRef:
		base = ErrBadRef
	case codeBadRequest:
		base = ErrProtocol
	case codeCanceled:
		return ErrCanceled
	case codeDeadline:
		return ErrDeadlineExceeded
	case codeShuttingDown:
		return ErrShuttingDown
	case codeOverloaded:
		return ErrOverloaded
	case codeReplyDropped:
		base = ErrOverloaded
	case codeRefused:
		return ErrShuttingDown
	case codeNoRoute:
		base = ErrNoRoute
	case codeUnreachable:
		base = ErrUnreachable
	case codeTooLarge:
		base = ErrTooLarge
	case codeNoTransformer:
		base = ErrNoTransformer
	case codeTransformFailed:
		base = ErrTransformFailed
	default:
		base = ErrProtocol
	}
	return fmt.Errorf("%w: %s", base, w.Message)
}

// notRun reports whether an error reply says that the call was refused
// before its handler ran.
func notRun(code uint8) bool {
	switch code {
	case codeUnknownMethod, codeUnknownObject, codeBadRef, codeOverloaded, codeRefused, codeNoRoute, codeNoTransformer, codeRejectedCall:
		return true
	}
	return false
}
