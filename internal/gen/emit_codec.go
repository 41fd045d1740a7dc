package gen

import (
	"fmt"
	"go/types"
	"slices"
	"strconv"

	"github.com/dave/jennifer/jen"
)

// wirePath is the import path of the CBOR codec that generated encoders and
// decoders call.
const wirePath = "github.com/trellisrpc/trellis/runtime/wire"

// wr returns a qualified reference to name in package wire.
func wr(name string) *jen.Statement { return jen.Qual(wirePath, name) }

// A codecWriter writes, for the wire structs whose every field package
// wire can encode, the AppendCBOR and DecodeCBOR methods of
// codegen.WireCodec, so that their calls are encoded without reflection,
// and the functions for the named struct types inside them. The bytes are
// those of the runtime's reflective encoder (fxamacker/cbor with the
// runtime's options): a struct with the `cbor:",toarray"` marker is an
// array of its exported fields, any other struct a map keyed by the names
// of its exported fields, nil pointers, slices and maps are null, []byte
// is a byte string.
//
// A type is written only if nothing in it needs the reflective codec's
// rules beyond these: booleans, integers, floats and strings (and named
// types of them), []byte, slices, maps with string or integer keys,
// pointers, and named structs without embedded fields or field tags (but
// the toarray marker and `cbor:"-"`). Any
// other type (time.Time, arrays, interfaces, types with their own
// MarshalCBOR or MarshalBinary, generic types...) leaves its wire struct to
// the reflective codec.
type codecWriter struct {
	g       *generator
	known   map[*types.Named]bool   // canEncode's answers for named types
	funcs   map[*types.Named]string // the suffix of the functions of each named struct used
	pending []*types.Named          // named structs whose functions are still to be written
	names   nameSet                 // the file's identifiers, for the functions' names
	imports map[string]string       // path → name of the packages the codecs spell types of

	// locals of the generated functions
	b, v, d, err, key, seen string
}

func newCodecWriter(g *generator, avoid nameSet) *codecWriter {
	return &codecWriter{g: g, known: map[*types.Named]bool{}, funcs: map[*types.Named]string{}, names: avoid, imports: map[string]string{}}
}

// plan decides which wire structs of services get codecs and notes the
// packages their code spells types of, for the imports.
func (c *codecWriter) plan(services []*service) {
	for _, s := range services {
		for _, m := range s.methods {
			m.argsCodec = c.planStruct(m.params)
			m.resultsCodec = c.planStruct(m.results)
		}
	}
}

// planStruct reports whether the wire struct of vals gets a codec, noting
// the imports its code needs if so.
func (c *codecWriter) planStruct(vals []*value) bool {
	if len(vals) == 0 || !c.fieldsOK(vals) {
		return false
	}
	c.imports[wirePath] = "wire"
	for _, v := range vals {
		if v.passing == byValue {
			c.collect(v.typ, map[types.Type]bool{})
		}
	}
	return true
}

// fieldsOK reports whether every value of a wire struct can be encoded.
func (c *codecWriter) fieldsOK(vals []*value) bool {
	for _, v := range vals {
		if v.passing == byValue && !c.canEncode(v.typ) {
			return false
		}
	}
	return true
}

// collect notes the packages of the types the codec of t spells.
func (c *codecWriter) collect(t types.Type, seen map[types.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	switch u := types.Unalias(t).(type) {
	case *types.Named:
		if p := u.Obj().Pkg(); p != nil && p != c.g.pkg {
			c.imports[p.Path()] = p.Name()
		}
		if st, ok := u.Underlying().(*types.Struct); ok {
			for i := range st.NumFields() {
				c.collect(st.Field(i).Type(), seen)
			}
		} else {
			c.collect(u.Underlying(), seen)
		}
	case *types.Pointer:
		c.collect(u.Elem(), seen)
	case *types.Slice:
		c.collect(u.Elem(), seen)
	case *types.Map:
		c.collect(u.Key(), seen)
		c.collect(u.Elem(), seen)
	}
}

// nameLocals chooses the names of the functions' locals once every name
// of the file is in avoid: they shadow nothing the functions refer to.
func (c *codecWriter) nameLocals(avoid nameSet) {
	locals := nameSet{}
	for k := range avoid {
		locals[k] = true
	}
	c.b, c.v, c.d = locals.fresh("b", "b_"), locals.fresh("v", "v_"), locals.fresh("d", "d_")
	c.err, c.key, c.seen = locals.fresh("err", "err_"), locals.fresh("key", "key_"), locals.fresh("seen", "seen_")
}

// local returns the name of a loop or block local at nesting depth.
func (c *codecWriter) local(base string, depth int) string {
	name := base + strconv.Itoa(depth)
	for c.names[name] {
		name += "_"
	}
	return name
}

// canEncode reports whether package wire encodes t (see codecWriter).
func (c *codecWriter) canEncode(t types.Type) bool {
	return c.can(t, map[*types.Named]bool{})
}

func (c *codecWriter) can(t types.Type, visiting map[*types.Named]bool) bool {
	switch u := types.Unalias(t).(type) {
	case *types.Basic:
		return u.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) != 0 &&
			u.Info()&(types.IsUntyped|types.IsComplex) == 0 && u.Kind() != types.Uintptr
	case *types.Pointer:
		return c.can(u.Elem(), visiting)
	case *types.Slice:
		return isByteElem(u.Elem()) || c.can(u.Elem(), visiting)
	case *types.Map:
		k, ok := u.Key().Underlying().(*types.Basic)
		return ok && k.Info()&(types.IsInteger|types.IsString) != 0 && c.can(u.Key(), visiting) && c.can(u.Elem(), visiting)
	case *types.Named:
		if ok, done := c.known[u]; done {
			return ok
		}
		if visiting[u] {
			return true // a recursive type: decided where it started
		}
		obj := u.Obj()
		if u.TypeArgs().Len() > 0 || codesItself(u) || (obj.Pkg() != nil && obj.Pkg() != c.g.pkg && !obj.Exported()) || obj.Pkg() == nil && obj.Name() == "error" {
			c.known[u] = false
			return false
		}
		visiting[u] = true
		var ok bool
		if st, isStruct := u.Underlying().(*types.Struct); isStruct {
			ok = c.structFields(st, visiting) != nil
		} else {
			ok = c.can(u.Underlying(), visiting)
		}
		delete(visiting, u)
		if len(visiting) == 0 || !ok {
			c.known[u] = ok
		}
		return ok
	}
	return false
}

// A codecField is a field of a struct that crosses.
type codecField struct {
	name string
	typ  types.Type
	// self marks a codegen.Ref or codegen.StreamRef field, which has
	// AppendCBOR and DecodeCBOR methods of its own.
	self bool
}

// A structForm is how a struct crosses: its fields, as an array or a map.
type structForm struct {
	fields  []codecField
	toArray bool
}

// structFields returns the form of st, or nil if it cannot be encoded.
func (c *codecWriter) structFields(st *types.Struct, visiting map[*types.Named]bool) *structForm {
	form := &structForm{fields: []codecField{}}
	for i := range st.NumFields() {
		f, tag := st.Field(i), st.Tag(i)
		switch {
		case f.Embedded():
			return nil
		case f.Name() == "_" && i == 0 && tag == `cbor:",toarray"` && isEmptyStruct(f.Type()):
			form.toArray = true
		case tag == `cbor:"-"`:
			// left out by the reflective codec too
		case tag != "":
			return nil // names, omitempty, keyasint...: the reflective codec's rules
		case !f.Exported():
			// skipped by the reflective codec too
		case !c.can(f.Type(), visiting):
			return nil
		default:
			form.fields = append(form.fields, codecField{name: f.Name(), typ: f.Type()})
		}
	}
	if !form.toArray && len(form.fields) > 64 {
		return nil // duplicates are tracked in a uint64
	}
	return form
}

// codesItself reports whether n or *n has a method that the reflective
// codec would call instead of looking inside the type.
func codesItself(n *types.Named) bool {
	for _, name := range []string{"MarshalCBOR", "UnmarshalCBOR", "MarshalBinary", "UnmarshalBinary"} {
		if obj, _, _ := types.LookupFieldOrMethod(types.NewPointer(n), false, n.Obj().Pkg(), name); obj != nil {
			return true
		}
	}
	return false
}

// namedStruct returns t as a named struct type, which has functions of
// its own.
func namedStruct(t types.Type) (*types.Named, bool) {
	n, ok := types.Unalias(t).(*types.Named)
	if !ok {
		return nil, false
	}
	_, isStruct := n.Underlying().(*types.Struct)
	return n, isStruct
}

func isEmptyStruct(t types.Type) bool {
	st, ok := types.Unalias(t).(*types.Struct)
	return ok && st.NumFields() == 0
}

// isByteElem reports whether a slice of t is []byte (a byte string).
func isByteElem(t types.Type) bool {
	b, ok := types.Unalias(t).(*types.Basic)
	return ok && b.Kind() == types.Byte
}

// methods writes the AppendCBOR and DecodeCBOR methods of the wire struct
// name, whose fields are vals, if package wire can encode them.
func (c *codecWriter) methods(f *jen.File, name, label string, vals []*value) {
	form := &structForm{toArray: true}
	for _, v := range vals {
		form.fields = append(form.fields, codecField{name: v.field, typ: v.typ, self: v.passing != byValue})
	}
	recv := jen.Id(c.v).Op("*").Id(name)
	decl(f, jen.Func().Params(recv).Id("AppendCBOR").Params(jen.Id(c.b).Index().Byte()).Index().Byte().
		Block(append(c.appendStruct(form), jen.Return(jen.Id(c.b)))...),
		"AppendCBOR implements codegen.WireCodec.")
	decl(f, jen.Func().Params(recv.Clone()).Id("DecodeCBOR").Params(jen.Id(c.d).Op("*").Add(wr("Decoder"))).Error().
		Block(c.decodeStruct(form, label)...),
		"DecodeCBOR implements codegen.WireCodec.")
}

// functions writes the functions of the named structs that the methods
// written so far use, and of those they use in turn.
func (c *codecWriter) functions(f *jen.File) {
	for len(c.pending) > 0 {
		n := c.pending[0]
		c.pending = c.pending[1:]
		form := c.structFields(n.Underlying().(*types.Struct), map[*types.Named]bool{})
		suffix := c.funcs[n]
		typ := c.g.typeCode(n)
		decl(f, jen.Func().Id("wireAppend"+suffix).Params(jen.Id(c.b).Index().Byte(), jen.Id(c.v).Op("*").Add(typ)).Index().Byte().
			Block(append(c.appendStruct(form), jen.Return(jen.Id(c.b)))...),
			fmt.Sprintf("wireAppend%s appends the CBOR encoding of *v to b.", suffix))
		decl(f, jen.Func().Id("wireDecode"+suffix).Params(jen.Id(c.d).Op("*").Add(wr("Decoder")), jen.Id(c.v).Op("*").Add(typ.Clone())).Error().
			Block(c.decodeStruct(form, typeLabel(n))...),
			fmt.Sprintf("wireDecode%s decodes *v from d.", suffix))
	}
}

// funcSuffix returns the suffix of the functions of named struct n,
// scheduling them to be written.
func (c *codecWriter) funcSuffix(n *types.Named) string {
	if s, ok := c.funcs[n]; ok {
		return s
	}
	want := upperFirst(n.Obj().Name())
	if p := n.Obj().Pkg(); p != nil && p != c.g.pkg {
		want = upperFirst(p.Name()) + want
	}
	s := want
	for i := 2; c.names["wireAppend"+s] || c.names["wireDecode"+s]; i++ {
		s = want + strconv.Itoa(i)
	}
	c.names["wireAppend"+s], c.names["wireDecode"+s] = true, true
	c.funcs[n] = s
	c.pending = append(c.pending, n)
	return s
}

// typeLabel names n in decoding errors.
func typeLabel(n *types.Named) string {
	if p := n.Obj().Pkg(); p != nil {
		return p.Name() + "." + n.Obj().Name()
	}
	return n.Obj().Name()
}

// appendStruct returns the statements that append the fields of *v.
func (c *codecWriter) appendStruct(form *structForm) []jen.Code {
	b := jen.Id(c.b)
	var code []jen.Code
	if form.toArray {
		code = append(code, b.Clone().Op("=").Add(wr("AppendArrayHeader")).Call(b.Clone(), jen.Lit(len(form.fields))))
	} else {
		code = append(code, b.Clone().Op("=").Add(wr("AppendMapHeader")).Call(b.Clone(), jen.Lit(len(form.fields))))
	}
	for _, fl := range form.fields {
		if !form.toArray {
			code = append(code, b.Clone().Op("=").Add(wr("AppendString")).Call(b.Clone(), jen.Lit(fl.name)))
		}
		if fl.self {
			code = append(code, b.Clone().Op("=").Id(c.v).Dot(fl.name).Dot("AppendCBOR").Call(b.Clone()))
			continue
		}
		code = append(code, c.appendValue(fl.typ, jen.Id(c.v).Dot(fl.name), 0)...)
	}
	return code
}

// appendValue returns the statements that append v, an addressable
// expression of type t, to b.
func (c *codecWriter) appendValue(t types.Type, v *jen.Statement, depth int) []jen.Code {
	b := jen.Id(c.b)
	set := func(fn string, args ...jen.Code) []jen.Code {
		return []jen.Code{b.Clone().Op("=").Add(wr(fn)).Call(append([]jen.Code{b.Clone()}, args...)...)}
	}
	if n, ok := namedStruct(t); ok {
		return []jen.Code{b.Clone().Op("=").Id("wireAppend"+c.funcSuffix(n)).Call(b.Clone(), jen.Op("&").Add(v))}
	}
	// as converts v to the basic type kind, unless it is of that type.
	as := func(kind types.BasicKind, conv *jen.Statement) jen.Code {
		if b, ok := types.Unalias(t).(*types.Basic); ok && b.Kind() == kind {
			return v
		}
		return conv.Call(v)
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return set("AppendBool", as(types.Bool, jen.Bool()))
		case u.Info()&types.IsUnsigned != 0:
			return set("AppendUint", as(types.Uint64, jen.Uint64()))
		case u.Info()&types.IsInteger != 0:
			return set("AppendInt", as(types.Int64, jen.Int64()))
		case u.Kind() == types.Float32:
			return set("AppendFloat32", as(types.Float32, jen.Float32()))
		case u.Info()&types.IsFloat != 0:
			return set("AppendFloat64", as(types.Float64, jen.Float64()))
		}
		return set("AppendString", as(types.String, jen.String()))
	case *types.Pointer:
		elem := c.appendValue(u.Elem(), jen.Op("*").Add(v.Clone()), depth)
		if n, ok := namedStruct(u.Elem()); ok {
			elem = []jen.Code{b.Clone().Op("=").Id("wireAppend"+c.funcSuffix(n)).Call(b.Clone(), v.Clone())}
		}
		return []jen.Code{jen.If(v.Clone().Op("==").Nil()).
			Block(set("AppendNull")...).
			Else().Block(elem...)}
	case *types.Slice:
		if isByteElem(u.Elem()) {
			if isBytes(t) {
				return set("AppendBytes", v)
			}
			return set("AppendBytes", jen.Index().Byte().Call(v))
		}
		i := c.local("i", depth)
		return []jen.Code{jen.If(v.Clone().Op("==").Nil()).
			Block(set("AppendNull")...).
			Else().Block(
			b.Clone().Op("=").Add(wr("AppendArrayHeader")).Call(b.Clone(), jen.Len(v.Clone())),
			jen.For(jen.Id(i).Op(":=").Range().Add(v.Clone())).
				Block(c.appendValue(u.Elem(), v.Clone().Index(jen.Id(i)), depth+1)...),
		)}
	case *types.Map:
		k, e := c.local("k", depth), c.local("e", depth)
		body := slices.Concat(c.appendValue(u.Key(), jen.Id(k), depth+1), c.appendValue(u.Elem(), jen.Id(e), depth+1))
		return []jen.Code{jen.If(v.Clone().Op("==").Nil()).
			Block(set("AppendNull")...).
			Else().Block(
			b.Clone().Op("=").Add(wr("AppendMapHeader")).Call(b.Clone(), jen.Len(v.Clone())),
			jen.For(jen.List(jen.Id(k), jen.Id(e)).Op(":=").Range().Add(v.Clone())).Block(body...),
		)}
	}
	c.g.fail(fmt.Errorf("internal error: no CBOR encoder for %s", t))
	return nil
}

// decodeStruct returns the body of a function that decodes *v from d.
func (c *codecWriter) decodeStruct(form *structForm, label string) []jen.Code {
	d, err := jen.Id(c.d), jen.Id(c.err)
	retErr := jen.If(err.Clone().Op("!=").Nil()).Block(jen.Return(err.Clone()))
	code := []jen.Code{jen.If(d.Clone().Dot("Nil").Call()).Block(jen.Return(jen.Nil()))}
	if form.toArray {
		code = append(code,
			err.Clone().Op(":=").Add(d.Clone()).Dot("ArrayOf").Call(jen.Lit(len(form.fields)), jen.Lit(label)),
			retErr)
		for _, fl := range form.fields {
			if fl.self {
				code = append(code, jen.If(err.Clone().Op("=").Id(c.v).Dot(fl.name).Dot("DecodeCBOR").Call(d.Clone()), err.Clone().Op("!=").Nil()).
					Block(jen.Return(err.Clone())))
				continue
			}
			code = append(code, c.decodeValue(fl.typ, jen.Id(c.v).Dot(fl.name), 0)...)
		}
		return append(code, d.Clone().Dot("Leave").Call(), jen.Return(jen.Nil()))
	}
	n := c.local("n", 0)
	code = append(code,
		jen.List(jen.Id(n), err.Clone()).Op(":=").Add(d.Clone()).Dot("Map").Call(),
		retErr,
	)
	if len(form.fields) > 0 {
		code = append(code, jen.Var().Id(c.seen).Uint64())
	}
	var cases []jen.Code
	for i, fl := range form.fields {
		bit := jen.Parens(jen.Lit(1).Op("<<").Lit(i))
		cases = append(cases, jen.Case(jen.Lit(fl.name)).Block(append([]jen.Code{
			jen.If(jen.Id(c.seen).Op("&").Add(bit).Op("!=").Lit(0)).
				Block(jen.Return(d.Clone().Dot("DuplicateKey").Call(jen.Lit(fl.name)))),
			jen.Id(c.seen).Op("|=").Add(bit.Clone()),
		}, c.decodeValue(fl.typ, jen.Id(c.v).Dot(fl.name), 0)...)...))
	}
	cases = append(cases, jen.Default().Block(jen.Return(d.Clone().Dot("Unknown").Call(jen.Id(c.key)))))
	code = append(code,
		jen.For(jen.Range().Id(n)).Block(
			jen.List(jen.Id(c.key), err.Clone()).Op(":=").Add(d.Clone()).Dot("Key").Call(),
			retErr.Clone(),
			jen.Switch(jen.String().Call(jen.Id(c.key))).Block(cases...),
		),
		d.Clone().Dot("Leave").Call(),
		jen.Return(jen.Nil()),
	)
	return code
}

// goSizes are the sizes that generated decoders charge to the decode
// budget (see wire.Decoder.Charge): those of gc on amd64, so that the
// output does not depend on the platform that runs go generate.
var goSizes = types.SizesFor("gc", "amd64")

// sizeOf returns the size of a value of type t, as a literal.
func sizeOf(t types.Type) jen.Code { return jen.Lit(int(goSizes.Sizeof(t))) }

// decodeValue returns the statements that decode dst, an addressable
// expression of type t, from d; err is declared.
func (c *codecWriter) decodeValue(t types.Type, dst *jen.Statement, depth int) []jen.Code {
	d, err := jen.Id(c.d), jen.Id(c.err)
	check := func(call jen.Code) []jen.Code {
		return []jen.Code{jen.If(jen.List(dst.Clone(), err.Clone()).Op("=").Add(call), err.Clone().Op("!=").Nil()).
			Block(jen.Return(err.Clone()))}
	}
	read := func(fn string) []jen.Code {
		return check(wr(fn).Types(c.g.typeCode(t)).Call(d.Clone()))
	}
	if n, ok := namedStruct(t); ok {
		return []jen.Code{jen.If(err.Clone().Op("=").Id("wireDecode"+c.funcSuffix(n)).Call(d.Clone(), jen.Op("&").Add(dst)), err.Clone().Op("!=").Nil()).
			Block(jen.Return(err.Clone()))}
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return read("Bool")
		case u.Info()&types.IsUnsigned != 0:
			return read("Uint")
		case u.Info()&types.IsInteger != 0:
			return read("Int")
		case u.Info()&types.IsFloat != 0:
			return read("Float")
		}
		return read("String")
	case *types.Pointer:
		elem := c.decodeValue(u.Elem(), jen.Op("*").Add(dst.Clone()), depth)
		if n, ok := namedStruct(u.Elem()); ok {
			elem = []jen.Code{jen.If(err.Clone().Op("=").Id("wireDecode"+c.funcSuffix(n)).Call(d.Clone(), dst.Clone()), err.Clone().Op("!=").Nil()).
				Block(jen.Return(err.Clone()))}
		}
		return []jen.Code{jen.If(d.Clone().Dot("Nil").Call()).
			Block(dst.Clone().Op("=").Nil()).
			Else().Block(append([]jen.Code{
			jen.If(err.Clone().Op("=").Add(d.Clone()).Dot("Alloc").Call(sizeOf(u.Elem())), err.Clone().Op("!=").Nil()).
				Block(jen.Return(err.Clone())),
			dst.Clone().Op("=").New(c.g.typeCode(u.Elem()))}, elem...)...)}
	case *types.Slice:
		if isByteElem(u.Elem()) {
			return read("Bytes")
		}
		n, i := c.local("n", depth+1), c.local("i", depth)
		return []jen.Code{jen.If(d.Clone().Dot("Nil").Call()).
			Block(dst.Clone().Op("=").Nil()).
			Else().Block(
			jen.List(jen.Id(n), err.Clone()).Op(":=").Add(d.Clone()).Dot("Slice").Call(sizeOf(u.Elem())),
			jen.If(err.Clone().Op("!=").Nil()).Block(jen.Return(err.Clone())),
			dst.Clone().Op("=").Make(c.g.typeCode(t), jen.Id(n)),
			jen.For(jen.Id(i).Op(":=").Range().Add(dst.Clone())).
				Block(c.decodeValue(u.Elem(), dst.Clone().Index(jen.Id(i)), depth+1)...),
			d.Clone().Dot("Leave").Call(),
		)}
	case *types.Map:
		n, k, e, dup := c.local("n", depth+1), c.local("k", depth), c.local("e", depth), c.local("dup", depth)
		return []jen.Code{jen.If(d.Clone().Dot("Nil").Call()).
			Block(dst.Clone().Op("=").Nil()).
			Else().Block(
			jen.List(jen.Id(n), err.Clone()).Op(":=").Add(d.Clone()).Dot("MapOf").Call(sizeOf(u.Key()), sizeOf(u.Elem())),
			jen.If(err.Clone().Op("!=").Nil()).Block(jen.Return(err.Clone())),
			dst.Clone().Op("=").Make(c.g.typeCode(t), jen.Id(n)),
			jen.For(jen.Range().Id(n)).Block(slices.Concat(
				[]jen.Code{jen.Var().Id(k).Add(c.g.typeCode(u.Key()))},
				c.decodeValue(u.Key(), jen.Id(k), depth+1),
				[]jen.Code{jen.Var().Id(e).Add(c.g.typeCode(u.Elem()))},
				c.decodeValue(u.Elem(), jen.Id(e), depth+1),
				[]jen.Code{
					jen.If(jen.List(jen.Id("_"), jen.Id(dup)).Op(":=").Add(dst.Clone()).Index(jen.Id(k)), jen.Id(dup)).
						Block(jen.Return(d.Clone().Dot("DuplicateKey").Call(jen.Id(k)))),
					dst.Clone().Index(jen.Id(k)).Op("=").Id(e),
				})...),
			d.Clone().Dot("Leave").Call(),
		)}
	}
	c.g.fail(fmt.Errorf("internal error: no CBOR decoder for %s", t))
	return nil
}
