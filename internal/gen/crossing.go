package gen

import (
	"fmt"
	"go/token"
	"go/types"
	"reflect"
	"strings"
)

// maxDepth bounds how deep crossing looks into nested unnamed types. Named
// types are visited once, so only absurd type literals come near it.
const maxDepth = 100

// crossing checks that the value of one parameter or result, with
// everything it contains, can be encoded on one node and decoded on another.
type crossing struct {
	a      *analyzer
	at     token.Position  // the parameter's position
	prefix string          // "method M: parameter p"
	seen   map[string]bool // named types already checked, by full name
	// transformed collects the -transformed types the value holds, as
	// they appear in it: T, or *T (**T...) when held by pointer.
	transformed []types.Type
}

// transformedAt reports whether t is a -transformed named type, or a
// pointer (to a pointer...) to one.
func (c *crossing) transformedAt(t types.Type) bool {
	for {
		switch u := types.Unalias(t).(type) {
		case *types.Pointer:
			t = u.Elem()
			continue
		case *types.Named:
			return c.a.isTransformed(u.Obj())
		}
		return false
	}
}

// found records t, a -transformed type as the value holds it, once.
func (c *crossing) found(t types.Type) {
	for _, have := range c.transformed {
		if types.Identical(have, t) {
			return
		}
	}
	c.transformed = append(c.transformed, t)
}

// report records that the part at path, of type t, cannot cross. The
// message names the part only when it is inside the parameter or result
// (e.Inner, s[0]): the prefix names the parameter itself.
func (c *crossing) report(path string, t types.Type, reason string) {
	if nested(path) {
		c.a.problems.addf(c.at, "%s: %s, of type %s, cannot cross a network: %s", c.prefix, path, c.a.typeString(t), reason)
	} else {
		c.a.problems.addf(c.at, "%s: type %s cannot cross a network: %s", c.prefix, c.a.typeString(t), reason)
	}
	c.a.problems.items[len(c.a.problems.items)-1].CannotCross = true
}

// nested reports whether path names a part inside a parameter or result
// (a field, an element, a key or a value) rather than the whole of it.
func nested(path string) bool { return strings.ContainsAny(path, ".[") }

// walk checks t, the type of the part at path. shown, when not nil, is the
// type to name in messages instead of t (the named type whose underlying
// type t is).
func (c *crossing) walk(t types.Type, path string, shown types.Type, depth int) {
	if shown == nil {
		shown = t
	}
	if depth > maxDepth {
		c.report(path, shown, fmt.Sprintf("it nests more than %d levels deep", maxDepth))
		return
	}
	switch u := types.Unalias(t).(type) {
	case *types.Named:
		c.named(u, path, shown, depth)
	case *types.Basic:
		c.basic(u, path, shown)
	case *types.Pointer:
		if c.transformedAt(u) {
			c.found(u) // a transformer for *T or for T replaces it
			return
		}
		c.walk(u.Elem(), path, nil, depth+1)
	case *types.Slice:
		c.walk(u.Elem(), path+"[0]", nil, depth+1)
	case *types.Array:
		c.walk(u.Elem(), path+"[0]", nil, depth+1)
	case *types.Map:
		if !isMapKey(u.Key()) {
			c.report(path+"[key]", u.Key(), "map keys must be booleans, numbers or strings")
		} else {
			c.walk(u.Key(), path+"[key]", nil, depth+1)
		}
		c.walk(u.Elem(), path+"[value]", nil, depth+1)
	case *types.Struct:
		c.fields(u, path, shown, depth)
	case *types.Interface:
		c.report(path, shown, interfaceReason(u, nested(path)))
	case *types.Chan:
		c.report(path, shown, "a channel only works within one process")
	case *types.Signature:
		c.report(path, shown, "a function only runs within one process")
	case *types.TypeParam:
		c.report(path, shown, "type parameters cannot be served")
	default:
		c.report(path, shown, "proxygen does not know how to send it")
	}
}

// named checks a named type: a few are special, the others are checked
// through their underlying type, once per parameter.
func (c *crossing) named(n *types.Named, path string, shown types.Type, depth int) {
	obj := n.Obj()
	switch {
	case isError(n):
		c.report(path, shown, "an error crosses only as the last result")
		return
	case isContext(n):
		c.report(path, shown, "a context crosses only as the first parameter")
		return
	case isStream(n):
		c.report(path, shown, "a stream (io.Reader, io.ReadCloser) crosses only as a parameter or result of its own, not inside another value")
		return
	case c.a.services[obj] != nil:
		c.report(path, shown, "a service crosses by reference only as a parameter or result of its own, not inside another value")
		return
	case isNamed(n, "time", "Time"), isNamed(n, "math/big", "Int"):
		// The codec has native encodings for these.
		return
	case c.a.isTransformed(obj):
		// A marshal transformer replaces it on the wire.
		c.found(n)
		return
	}
	if _, ok := n.Underlying().(*types.Interface); !ok && marshalsItself(n) {
		return
	}
	key := types.TypeString(n, func(p *types.Package) string { return p.Path() })
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	if _, ok := n.Underlying().(*types.Interface); ok {
		c.report(path, shown, interfaceReason(nil, nested(path)))
		return
	}
	c.walk(n.Underlying(), path, shown, depth+1)
}

// basic checks a basic type.
func (c *crossing) basic(b *types.Basic, path string, shown types.Type) {
	switch b.Kind() {
	case types.Invalid:
		c.a.sawInvalid = true
		c.report(path, shown, "it does not type-check")
	case types.Uintptr, types.UnsafePointer:
		c.report(path, shown, "it is a memory address, which means nothing on another node")
	case types.Complex64, types.Complex128:
		c.report(path, shown, "CBOR has no complex numbers")
	}
}

// fields checks the fields of a struct: every field must be exported (or
// explicitly left out with a `cbor:"-"` tag) and able to cross. The
// unexported ones are reported together, once per struct.
func (c *crossing) fields(s *types.Struct, path string, shown types.Type, depth int) {
	var unexported []string
	for i := 0; i < s.NumFields(); i++ {
		f := s.Field(i)
		if f.Name() == "_" || skipped(s.Tag(i)) {
			continue
		}
		if !f.Exported() {
			unexported = append(unexported, f.Name())
			continue
		}
		c.walk(f.Type(), path+"."+f.Name(), nil, depth+1)
	}
	switch {
	case len(unexported) == 0:
	case inStandardLibrary(shown):
		c.report(path, shown, fmt.Sprintf("its unexported fields (%s) are not sent, and a type of the standard library cannot be tagged: send what it stands for (a name, a number) instead, or give it a marshal transformer (-transformed)", strings.Join(unexported, ", ")))
	case len(unexported) == 1:
		c.report(path, shown, fmt.Sprintf("unexported field %s is not sent (tag it `cbor:\"-\"` to leave it out on purpose)", unexported[0]))
	default:
		c.report(path, shown, fmt.Sprintf("unexported fields %s are not sent (tag them `cbor:\"-\"` to leave them out on purpose)", strings.Join(unexported, ", ")))
	}
}

// inStandardLibrary reports whether t is a named type of the standard
// library, whose fields no one but Go can tag: its package path has no
// dot in its first element.
func inStandardLibrary(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	if !ok || n.Obj().Pkg() == nil {
		return false
	}
	first, _, _ := strings.Cut(n.Obj().Pkg().Path(), "/")
	return !strings.Contains(first, ".")
}

// skipped reports whether a struct tag leaves its field out of the CBOR
// encoding: `cbor:"-"`, or `json:"-"` without a cbor key.
func skipped(tag string) bool {
	st := reflect.StructTag(tag)
	if v, ok := st.Lookup("cbor"); ok {
		return v == "-"
	}
	v, ok := st.Lookup("json")
	return ok && v == "-"
}

// interfaceReason explains why an interface value cannot cross; iface is
// nil for a named interface, inside tells that it is held inside the
// parameter or result (where even a service or a stream cannot cross).
func interfaceReason(iface *types.Interface, inside bool) string {
	switch {
	case iface != nil && iface.Empty():
		return "an interface value carries no static type to decode into"
	case inside:
		return "an interface does not cross inside another value: a service (in the -type set) crosses by reference, and io.Reader or io.ReadCloser as a stream, only as a parameter or result of its own"
	}
	return "an interface crosses only if it is in the -type set (by reference) or is io.Reader or io.ReadCloser (as a stream)"
}

// isMapKey reports whether t can be the key of a map that crosses: a
// boolean, a number or a string, or a named type of one.
func isMapKey(t types.Type) bool {
	b, ok := t.Underlying().(*types.Basic)
	return ok && b.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) != 0
}

// marshalsItself reports whether *n has the methods of
// encoding.BinaryMarshaler and encoding.BinaryUnmarshaler, or those of
// cbor.Marshaler and cbor.Unmarshaler, which the codec then uses instead of
// looking inside the type.
func marshalsItself(n *types.Named) bool {
	return (hasMethod(n, "MarshalBinary", isMarshal) && hasMethod(n, "UnmarshalBinary", isUnmarshal)) ||
		(hasMethod(n, "MarshalCBOR", isMarshal) && hasMethod(n, "UnmarshalCBOR", isUnmarshal))
}

// hasMethod reports whether *n has a method name whose signature satisfies
// ok.
func hasMethod(n *types.Named, name string, ok func(*types.Signature) bool) bool {
	obj, _, _ := types.LookupFieldOrMethod(types.NewPointer(n), false, n.Obj().Pkg(), name)
	fn, isFunc := obj.(*types.Func)
	if !isFunc {
		return false
	}
	sig, isSig := fn.Type().(*types.Signature)
	return isSig && ok(sig)
}

// isMarshal reports whether sig is func() ([]byte, error).
func isMarshal(sig *types.Signature) bool {
	return sig.Params().Len() == 0 && sig.Results().Len() == 2 &&
		isBytes(sig.Results().At(0).Type()) && isError(sig.Results().At(1).Type())
}

// isUnmarshal reports whether sig is func([]byte) error.
func isUnmarshal(sig *types.Signature) bool {
	return sig.Params().Len() == 1 && sig.Results().Len() == 1 && !sig.Variadic() &&
		isBytes(sig.Params().At(0).Type()) && isError(sig.Results().At(0).Type())
}

// isBytes reports whether t is []byte.
func isBytes(t types.Type) bool {
	s, ok := types.Unalias(t).(*types.Slice)
	if !ok {
		return false
	}
	b, ok := types.Unalias(s.Elem()).(*types.Basic)
	return ok && b.Kind() == types.Byte
}

// spell reports, through report, every part of the type t (as written, not
// through named types) that generated code in package a.pkg cannot write:
// unexported types of other packages and internal packages out of reach.
func (a *analyzer) spell(t types.Type, report func(reason string)) {
	forEachTypeName(t, func(obj *types.TypeName) {
		p := obj.Pkg()
		switch {
		case p == nil || p == a.pkg:
		case !obj.Exported():
			report(fmt.Sprintf("%s is not exported by package %s, so generated code cannot name it", obj.Name(), p.Path()))
		case !canImport(a.pkg.Path(), p.Path()):
			report(fmt.Sprintf("package %s is internal, so generated code in %s cannot import it", p.Path(), a.pkg.Path()))
		}
	})
}
