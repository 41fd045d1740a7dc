// Package wire is the CBOR codec that proxygen's generated code uses for
// the arguments and results of calls whose types it can encode without
// reflection: booleans, integers, floats, strings, byte slices, slices,
// maps, pointers and structs of those (see proxygen's documentation for the
// exact set). The bytes it writes are the bytes the runtime's reflective
// encoder (github.com/fxamacker/cbor/v2, with the runtime's options) writes
// for the same value, so either side of a call may use either codec; its
// Decoder accepts that encoding, enforces the same limits (nesting, array
// and map sizes, duplicate map keys) and fails with a *SyntaxError on
// anything else, before allocating more than the input can justify. It
// also keeps a decode budget per input (see Limits.MaxAmplification):
// generated code tells it what it allocates (Slice, MapOf, Alloc; the
// typed reads charge strings), and an input that would decode into more
// than its budget fails with a *BudgetError.
//
// The functions are for generated code; applications do not call them.
package wire
