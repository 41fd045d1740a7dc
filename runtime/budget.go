package runtime

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// The decode budget of the reflective decoder. Generated decoders charge
// what they allocate as they go (see wire.Decoder.Charge); the reflective
// decoder (github.com/fxamacker/cbor/v2) has no such hook, so a message
// bound for it is first walked, item by item, alongside the Go type it will
// be decoded into, adding up what decoding would allocate: the elements of
// slices, the entries of maps, the bytes of strings, the values pointers
// point to, what an interface boxes. A message whose total exceeds its
// budget is refused before anything is decoded. The walk allocates nothing.

// Sizes of what the reflective decoder allocates for an item decoded into
// an interface (an any field, or a type the walk cannot see into).
const (
	ifaceSize    = 16 // an interface value: a slot of a []any, a map[any]any
	rawSliceSize = 24 // a cbor.RawMessage: what the transforming decoder splits containers into
)

// budgetScan is one walk of a message.
type budgetScan struct {
	data     []byte
	off      int
	left     int // bytes of budget left
	budget   int
	maxDepth int
	set      *transformerSet // the node's transformers, or nil
}

// checkBudget walks data, which holds one CBOR item, as the reflective
// decoder would decode it into a value of type t (set, if not nil, being
// the transformers that apply), and fails with a *wire.BudgetError if that
// would allocate more than the message's decode budget. Malformed input is
// left for the decoder to refuse.
func (c *codec) checkBudget(data []byte, t reflect.Type, set *transformerSet) error {
	b := c.limits.Budget(len(data))
	s := budgetScan{data: data, left: b, budget: b, maxDepth: c.limits.MaxNesting + 1, set: set}
	err := s.item(t, 0)
	if _, ok := err.(*wire.BudgetError); ok {
		return err
	}
	return nil // not CBOR the decoder accepts: it says why
}

// errMalformed stops a walk over input that the decoder will refuse.
var errMalformed = fmt.Errorf("malformed")

// charge counts n items of size bytes.
func (s *budgetScan) charge(n, size uint64) error {
	if size != 0 && n > math.MaxUint64/size {
		n, size = math.MaxUint64, 1
	}
	if n*size > uint64(s.left) {
		need := uint64(s.budget-s.left) + n*size
		return &wire.BudgetError{Offset: s.off, Size: len(s.data), Budget: s.budget, Need: int(min(need, math.MaxInt))}
	}
	s.left -= int(n * size)
	return nil
}

// head reads the head of the next item: its major type and argument.
func (s *budgetScan) head() (major byte, arg uint64, err error) {
	if s.off >= len(s.data) {
		return 0, 0, errMalformed
	}
	b := s.data[s.off]
	major, info := b>>5, b&0x1f
	s.off++
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info > 27:
		return 0, 0, errMalformed // indefinite lengths are refused by the decoder
	}
	size := 1 << (info - 24)
	if len(s.data)-s.off < size {
		return 0, 0, errMalformed
	}
	p := s.data[s.off : s.off+size]
	s.off += size
	switch size {
	case 1:
		return major, uint64(p[0]), nil
	case 2:
		return major, uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return major, uint64(binary.BigEndian.Uint32(p)), nil
	}
	return major, binary.BigEndian.Uint64(p), nil
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	rawMessageType  = reflect.TypeFor[cbor.RawMessage]()
	unmarshalerType = reflect.TypeFor[cbor.Unmarshaler]()
	binaryUnmarType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	refType         = reflect.TypeFor[codegen.Ref]()
	streamRefType   = reflect.TypeFor[codegen.StreamRef]()
)

// item walks one item decoded into a value of type t; t nil means an
// interface (the decoder picks the Go type from the CBOR type and boxes
// the value).
func (s *budgetScan) item(t reflect.Type, depth int) error {
	return s.value(s.resolve(t), depth)
}

// resolved is what a type decodes as: pointers followed, transformed types
// replaced by their wire type, interfaces and custom decoders made nil.
type resolved struct {
	t    reflect.Type // nil: decoded as into an interface
	ptrs uint64       // bytes the pointers on the way allocate
	skip bool         // nothing allocated beyond the value itself
}

var resolvedCache sync.Map // reflect.Type → resolved, without transformers

// resolve returns what t decodes as (cached when no transformer applies).
func (s *budgetScan) resolve(t reflect.Type) resolved {
	if t == nil {
		return resolved{}
	}
	if s.set == nil {
		if r, ok := resolvedCache.Load(t); ok {
			return r.(resolved)
		}
	}
	r := s.resolveType(t)
	if s.set == nil {
		resolvedCache.Store(t, r)
	}
	return r
}

func (s *budgetScan) resolveType(t reflect.Type) resolved {
	var r resolved
	for range 64 {
		if s.set != nil {
			if mt := s.set.byType[t]; mt != nil {
				switch {
				case mt.ref != nil:
					t = refType
				case mt.stream:
					t = streamRefType
				default:
					t = mt.w
				}
			}
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		// A pointer decodes into a new value (null leaves it nil, but
		// charging it anyway keeps the walk simple and errs on the safe
		// side).
		r.ptrs += uint64(t.Elem().Size())
		t = t.Elem()
	}
	switch {
	case t == timeType || t == rawMessageType:
		r.t, r.skip = t, true // nothing allocated beyond the value (a RawMessage is one copy of its bytes)
	case t.Kind() == reflect.Interface:
	case reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(binaryUnmarType):
		// A custom decoder: what it allocates is its business; charge
		// what a generic decoding would.
	default:
		r.t = t
	}
	return r
}

// value walks one item decoded as r.
func (s *budgetScan) value(r resolved, depth int) error {
	if depth > s.maxDepth {
		return errMalformed // the decoder refuses it
	}
	if r.ptrs > 0 {
		if err := s.charge(1, r.ptrs); err != nil {
			return err
		}
	}
	if r.skip {
		return s.skip(depth)
	}
	t := r.t
	major, arg, err := s.head()
	if err != nil {
		return err
	}
	switch major {
	case 0, 1, 7: // integers, simple values, floats
		if t == nil {
			return s.charge(1, 8) // boxed
		}
		return nil
	case 2, 3: // byte and text strings
		if arg > uint64(len(s.data)-s.off) {
			return errMalformed
		}
		s.off += int(arg)
		size := arg
		switch {
		case t == nil:
			size += ifaceSize // the string or slice header, boxed
		case t.Kind() == reflect.Array:
			size = 0
		case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
			return errMalformed // a type mismatch: refused by the decoder
		}
		return s.charge(1, size)
	case 4: // array
		return s.array(t, arg, depth)
	case 5: // map
		return s.mapItem(t, arg, depth)
	case 6: // tag: its content is decoded into t
		return s.item(t, depth+1)
	}
	return errMalformed
}

// array walks an array of n items decoded into t.
func (s *budgetScan) array(t reflect.Type, n uint64, depth int) error {
	if n > uint64(len(s.data)-s.off) {
		return errMalformed // each item takes a byte at least
	}
	var fields []reflect.Type // a struct's, by position
	var elem resolved         // a slice's or array's elements
	var slot, boxed uint64
	switch {
	case t == nil:
		slot = ifaceSize
		boxed = 24 // the []any's header, boxed
	case t.Kind() == reflect.Slice:
		slot = uint64(t.Elem().Size())
		elem = s.resolve(t.Elem())
	case t.Kind() == reflect.Array:
		elem = s.resolve(t.Elem())
	case t.Kind() == reflect.Struct:
		fs := structFields(t)
		if !fs.toArray {
			return errMalformed
		}
		fields = fs.byIndex
	default:
		return errMalformed
	}
	if t != nil && s.set != nil && s.set.contains(t) {
		slot += rawSliceSize // the transforming decoder splits it into raw items first
	}
	if err := s.charge(n, slot); err != nil {
		return err
	}
	if err := s.charge(1, boxed); err != nil {
		return err
	}
	if fields == nil && elem.t != nil && elem.ptrs == 0 && !elem.skip && isLeaf(elem.t.Kind()) {
		return s.leaves(n, elem.t.Kind() == reflect.Array)
	}
	for i := range n {
		e := elem
		if t != nil && t.Kind() == reflect.Struct {
			e = resolved{}
			if i < uint64(len(fields)) {
				e = s.resolve(fields[i])
			}
		}
		if err := s.value(e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// isLeaf reports whether values of kind k hold no further allocation but
// the bytes of a string.
func isLeaf(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}

// leaves walks n items decoded into leaf values (see isLeaf): the hot
// loop of a long array of numbers or strings. Strings are charged their
// bytes, unless inline (an array of bytes).
func (s *budgetScan) leaves(n uint64, inline bool) error {
	var strs uint64
	start := s.off
	data, off := s.data, s.off
	for range n {
		if off >= len(data) {
			return errMalformed
		}
		b := data[off]
		switch major, info := b>>5, b&0x1f; {
		case info < 24 && (major == 2 || major == 3):
			off += 1 + int(info) // a short string, the common case
			strs += uint64(info)
		case info < 24 && (major <= 1 || major == 7):
			off++
		default:
			s.off = off
			major, arg, err := s.head()
			if err != nil {
				return err
			}
			switch major {
			case 0, 1, 7:
			case 2, 3:
				if arg > uint64(len(data)-s.off) {
					return errMalformed
				}
				s.off += int(arg)
				strs += arg
			default:
				return errMalformed // not a leaf: the decoder refuses it
			}
			off = s.off
		}
	}
	if off > len(data) {
		return errMalformed
	}
	if !inline {
		s.off = start // for the error's offset
		if err := s.charge(1, strs); err != nil {
			return err
		}
	}
	s.off = off
	return nil
}

// mapItem walks a map of n pairs decoded into t.
func (s *budgetScan) mapItem(t reflect.Type, n uint64, depth int) error {
	if n > uint64(len(s.data)-s.off)/2 {
		return errMalformed
	}
	switch {
	case t == nil:
		if err := s.charge(n, wire.MapEntrySize(ifaceSize, ifaceSize)); err != nil {
			return err
		}
		if err := s.charge(1, 48); err != nil { // the map's header and first group
			return err
		}
		for range 2 * n {
			if err := s.item(nil, depth+1); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Map:
		size := wire.MapEntrySize(t.Key().Size(), t.Elem().Size())
		if s.set != nil && s.set.contains(t) {
			size += 2 * rawSliceSize
		}
		if err := s.charge(n, size); err != nil {
			return err
		}
		kt, vt := s.resolve(t.Key()), s.resolve(t.Elem())
		for range n {
			if err := s.value(kt, depth+1); err != nil {
				return err
			}
			if err := s.value(vt, depth+1); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Struct:
		fs := structFields(t)
		for range n {
			key, ok := s.text()
			if !ok { // not a field name: the decoder refuses the message
				return errMalformed
			}
			ft, ok := fs.lookup(key)
			if !ok { // an unknown field: the decoder skips its value
				if err := s.skip(depth + 1); err != nil {
					return err
				}
				continue
			}
			if err := s.item(ft, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return errMalformed
}

// text reads a text string, without copying it; ok is false if the next
// item is not one.
func (s *budgetScan) text() ([]byte, bool) {
	major, n, err := s.head()
	if err != nil || major != 3 || n > uint64(len(s.data)-s.off) {
		return nil, false
	}
	k := s.data[s.off : s.off+int(n)]
	s.off += int(n)
	return k, true
}

// skip walks an item whose decoding allocates nothing (or that the
// decoder skips), checking only its structure.
func (s *budgetScan) skip(depth int) error {
	if depth > s.maxDepth {
		return errMalformed
	}
	major, arg, err := s.head()
	if err != nil {
		return err
	}
	switch major {
	case 2, 3:
		if arg > uint64(len(s.data)-s.off) {
			return errMalformed
		}
		s.off += int(arg)
	case 4, 5:
		if major == 5 {
			if arg > math.MaxUint64/2 {
				return errMalformed
			}
			arg *= 2
		}
		if arg > uint64(len(s.data)-s.off) {
			return errMalformed
		}
		for range arg {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case 6:
		return s.skip(depth + 1)
	}
	return nil
}

// budgetFields is what the walk needs of a struct type: its fields by
// the names the decoder matches (exactly, or ignoring case), or by position
// for a struct encoded as an array.
type budgetFields struct {
	toArray bool
	byIndex []reflect.Type
	byName  map[string]reflect.Type
	names   []fieldName // for names that match ignoring case
}

type fieldName struct {
	name []byte
	t    reflect.Type
}

// lookup finds the field a map key names, without allocating.
func (f *budgetFields) lookup(key []byte) (reflect.Type, bool) {
	if t, ok := f.byName[string(key)]; ok {
		return t, true
	}
	for _, n := range f.names {
		if bytes.EqualFold(n.name, key) {
			return n.t, true
		}
	}
	return nil, false
}

var budgetFieldCache sync.Map // reflect.Type → *budgetFields

// structFields returns the fields of struct type t as the decoder sees
// them (embedded structs flattened, as the decoder does).
func structFields(t reflect.Type) *budgetFields {
	if v, ok := budgetFieldCache.Load(t); ok {
		return v.(*budgetFields)
	}
	f := &budgetFields{byName: map[string]reflect.Type{}}
	var add func(t reflect.Type, depth int)
	add = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("cbor")
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Name == "_" {
				if strings.Contains(opts, "toarray") {
					f.toArray = true
				}
				continue
			}
			if name == "-" {
				continue
			}
			ft := sf.Type
			if sf.Anonymous && name == "" && depth < 8 {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					add(et, depth+1)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f.byIndex = append(f.byIndex, ft)
			if _, dup := f.byName[name]; !dup {
				f.byName[name] = ft
				f.names = append(f.names, fieldName{[]byte(name), ft})
			}
		}
	}
	add(t, 0)
	v, _ := budgetFieldCache.LoadOrStore(t, f)
	return v.(*budgetFields)
}
