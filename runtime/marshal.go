package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// RegisterTransformer registers a marshal transformer on n: wherever a
// value of type T appears in the arguments or results of a call that n sends
// or serves — at the top level, or inside slices, arrays, maps (as values),
// pointers and struct fields, at any depth — it crosses the network as
// out(value), of type W, and is restored with in on arrival. Use it for
// values that cannot be serialized as they are (a handle, a lock, a cache)
// and can be replaced by a snapshot or an identifier.
//
// Both nodes of a call must register the same transformers for the types
// they exchange. Reach and cost: the arguments and results types that do
// not contain T (computed once per type) are encoded as before, so a node
// without transformers, or a call that carries no T, pays one atomic load.
// A value that contains T is walked with reflection: the containers on the
// way to each T are rebuilt as generic CBOR arrays (maps become arrays of
// key/value pairs, structs arrays of their encoded fields in declaration
// order), which allocates in proportion to their size; W itself is encoded
// as usual. T must not appear inside a map key. A transformer's W is not
// transformed again. When T is a pointer type, a nil T stays nil without
// calling out.
func RegisterTransformer[T, W any](n *Node, out func(T) (W, error), in func(W) (T, error)) error {
	if out == nil || in == nil {
		return errors.New("trellis: RegisterTransformer needs both functions")
	}
	t, w := reflect.TypeFor[T](), reflect.TypeFor[W]()
	if t == w {
		return fmt.Errorf("trellis: RegisterTransformer[%v, %v]: the wire type must differ", t, w)
	}
	// A panicking transformer fails the call instead of the node: the
	// decoding side runs on a connection's reader goroutine.
	mt := &marshalTransformer{
		t: t, w: w,
		out: func(v reflect.Value) (_ any, err error) {
			defer recoverInto(&err)
			return out(v.Interface().(T))
		},
		in: func(wv reflect.Value) (_ reflect.Value, err error) {
			defer recoverInto(&err)
			v, err := in(wv.Interface().(W))
			return reflect.ValueOf(&v).Elem(), err
		},
	}
	n.regMu.Lock()
	defer n.regMu.Unlock()
	old := n.marshal.Load()
	set := &transformerSet{byType: make(map[reflect.Type]*marshalTransformer)}
	if old != nil {
		for k, v := range old.byType {
			set.byType[k] = v
		}
	}
	if _, dup := set.byType[t]; dup {
		return fmt.Errorf("trellis: RegisterTransformer: a transformer for %v is registered already", t)
	}
	set.byType[t] = mt
	n.marshal.Store(set)
	return nil
}

func recoverInto(err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("transformer panicked: %v", v)
	}
}

type marshalTransformer struct {
	t, w reflect.Type
	out  func(reflect.Value) (any, error)
	in   func(reflect.Value) (reflect.Value, error)
}

// transformerSet is an immutable set of transformers with a cache of which
// types contain a transformed type.
type transformerSet struct {
	byType map[reflect.Type]*marshalTransformer
	needs  sync.Map // reflect.Type → bool
}

// maxTransformDepth bounds the nesting the transforming decoder follows.
const maxTransformDepth = 64

// contains reports whether values of type t may hold a transformed type.
func (s *transformerSet) contains(t reflect.Type) bool {
	if v, ok := s.needs.Load(t); ok {
		return v.(bool)
	}
	r := s.search(t, make(map[reflect.Type]bool))
	s.needs.Store(t, r)
	return r
}

func (s *transformerSet) search(t reflect.Type, seen map[reflect.Type]bool) bool {
	if s.byType[t] != nil {
		return true
	}
	if seen[t] {
		return false // a cycle: decided where it started
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return s.search(t.Elem(), seen)
	case reflect.Map:
		return s.search(t.Key(), seen) || s.search(t.Elem(), seen)
	case reflect.Struct:
		for _, f := range wireFields(t) {
			if s.search(t.Field(f.index).Type, seen) {
				return true
			}
		}
	}
	return false
}

type wireField struct {
	index int
	name  string
}

// wireFields lists the fields of a struct that cross the network.
func wireFields(t reflect.Type) []wireField {
	var fs []wireField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Name == "_" {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("cbor"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		fs = append(fs, wireField{i, name})
	}
	return fs
}

// toWire returns the value to encode in place of v.
func (s *transformerSet) toWire(v reflect.Value) (any, error) {
	t := v.Type()
	if mt := s.byType[t]; mt != nil {
		if t.Kind() == reflect.Pointer && v.IsNil() {
			return nil, nil // a nil *T stays nil
		}
		w, err := mt.out(v)
		if err != nil {
			return nil, fmt.Errorf("transforming %v: %w", t, err)
		}
		return w, nil
	}
	if !s.contains(t) {
		return v.Interface(), nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return s.toWire(v.Elem())
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && v.IsNil() {
			return nil, nil
		}
		arr := make([]any, v.Len())
		for i := range arr {
			var err error
			if arr[i], err = s.toWire(v.Index(i)); err != nil {
				return nil, err
			}
		}
		return arr, nil
	case reflect.Map:
		if v.IsNil() {
			return nil, nil
		}
		if s.contains(t.Key()) {
			return nil, fmt.Errorf("a transformed type in the key of %v is not supported", t)
		}
		pairs := make([][2]any, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			val, err := s.toWire(it.Value())
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, [2]any{it.Key().Interface(), val})
		}
		return pairs, nil
	case reflect.Struct:
		fs := wireFields(t)
		arr := make([]any, len(fs))
		for i, f := range fs {
			var err error
			if arr[i], err = s.toWire(v.Field(f.index)); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return arr, nil
	}
	return v.Interface(), nil
}

var cborNull = []byte{0xf6}

// fromWire decodes data into dst (addressable), restoring transformed values.
func (s *transformerSet) fromWire(dec cbor.DecMode, data []byte, dst reflect.Value, depth int) error {
	if depth > maxTransformDepth {
		return fmt.Errorf("nesting deeper than %d", maxTransformDepth)
	}
	t := dst.Type()
	if mt := s.byType[t]; mt != nil {
		if t.Kind() == reflect.Pointer && bytes.Equal(data, cborNull) {
			dst.SetZero()
			return nil
		}
		w := reflect.New(mt.w)
		if err := dec.Unmarshal(data, w.Interface()); err != nil {
			return err
		}
		v, err := mt.in(w.Elem())
		if err != nil {
			return fmt.Errorf("restoring %v: %w", t, err)
		}
		dst.Set(v)
		return nil
	}
	if !s.contains(t) {
		return dec.Unmarshal(data, dst.Addr().Interface())
	}
	isNull := bytes.Equal(data, cborNull)
	switch t.Kind() {
	case reflect.Pointer:
		if isNull {
			dst.SetZero()
			return nil
		}
		e := reflect.New(t.Elem())
		if err := s.fromWire(dec, data, e.Elem(), depth+1); err != nil {
			return err
		}
		dst.Set(e)
		return nil
	case reflect.Slice, reflect.Array:
		if isNull && t.Kind() == reflect.Slice {
			dst.SetZero()
			return nil
		}
		var raws []cbor.RawMessage
		if err := dec.Unmarshal(data, &raws); err != nil {
			return err
		}
		if t.Kind() == reflect.Array {
			if len(raws) != t.Len() {
				return fmt.Errorf("%d elements for %v", len(raws), t)
			}
		} else {
			dst.Set(reflect.MakeSlice(t, len(raws), len(raws)))
		}
		for i, r := range raws {
			if err := s.fromWire(dec, r, dst.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if isNull {
			dst.SetZero()
			return nil
		}
		var pairs [][2]cbor.RawMessage
		if err := dec.Unmarshal(data, &pairs); err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, len(pairs))
		for _, p := range pairs {
			k := reflect.New(t.Key()).Elem()
			if err := dec.Unmarshal(p[0], k.Addr().Interface()); err != nil {
				return err
			}
			v := reflect.New(t.Elem()).Elem()
			if err := s.fromWire(dec, p[1], v, depth+1); err != nil {
				return err
			}
			m.SetMapIndex(k, v)
		}
		dst.Set(m)
		return nil
	case reflect.Struct:
		fs := wireFields(t)
		var raws []cbor.RawMessage
		if err := dec.Unmarshal(data, &raws); err != nil {
			return err
		}
		if len(raws) != len(fs) {
			return fmt.Errorf("%d fields for %v, which has %d", len(raws), t, len(fs))
		}
		for i, f := range fs {
			if err := s.fromWire(dec, raws[i], dst.Field(f.index), depth+1); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return nil
	}
	return dec.Unmarshal(data, dst.Addr().Interface())
}

// encode appends the CBOR encoding of v (a pointer to a generated struct)
// to buf, applying the node's marshal transformers.
func (n *Node) encode(v any, buf *bytes.Buffer) error {
	if s := n.marshal.Load(); s != nil {
		if rv := reflect.ValueOf(v); s.contains(rv.Type()) {
			w, err := s.toWire(rv)
			if err != nil {
				return err
			}
			return n.codec.enc.MarshalToBuffer(w, buf)
		}
	}
	return n.codec.enc.MarshalToBuffer(v, buf)
}

// decode decodes data into v (a pointer to a generated struct), restoring
// transformed values.
func (n *Node) decode(data []byte, v any) error {
	if s := n.marshal.Load(); s != nil {
		if rv := reflect.ValueOf(v); s.contains(rv.Type()) {
			return s.fromWire(n.codec.dec, data, rv.Elem(), 0)
		}
	}
	return n.codec.dec.Unmarshal(data, v)
}
