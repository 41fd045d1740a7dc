package gen

import (
	"fmt"
	"go/types"

	"github.com/dave/jennifer/jen"
)

// methodDecls writes the declarations of one method: its desc, its wire
// types, the proxy method and the handler.
func (g *generator) methodDecls(f *jen.File, s *service, m *method) {
	fields := []jen.Code{
		jen.Id("Name").Op(":").Lit(m.name),
		jen.Id("Signature").Op(":").Lit(m.signature),
		jen.Id("ID").Op(":").Add(hex(m.id)),
		jen.Id("Handler").Op(":").Id(m.handler),
	}
	var flags []jen.Code
	if m.idempotent {
		flags = append(flags, cg("Idempotent"))
	}
	if m.oneShot {
		flags = append(flags, cg("OneShot"))
	}
	if len(flags) > 0 {
		flag := jen.Add(flags[0])
		for _, fl := range flags[1:] {
			flag = flag.Op("|").Add(fl)
		}
		fields = append(fields, jen.Id("Flags").Op(":").Add(flag))
	}
	if ts := m.transformed(); len(ts) > 0 {
		var types []jen.Code
		for _, t := range ts {
			types = append(types, jen.Qual("reflect", "TypeFor").Index(g.typeCode(t)).Call())
		}
		fields = append(fields, jen.Id("Transformed").Op(":").Index().Qual("reflect", "Type").Values(types...))
	}
	decl(f, jen.Var().Id(m.desc).Op("=").Op("&").Add(cg("MethodDesc")).Values(keyed(fields...)...),
		fmt.Sprintf("%s describes %s.%s.", m.desc, s.name, m.name))
	if len(m.params) > 0 {
		decl(f, g.wireStruct(m.argsType, m.params),
			fmt.Sprintf("%s holds the arguments of %s.%s on the wire.", m.argsType, s.name, m.name))
		if m.argsCodec {
			g.codec.methods(f, m.argsType, fmt.Sprintf("the arguments of %s.%s", s.name, m.name), m.params)
		}
	}
	if len(m.results) > 0 {
		decl(f, g.wireStruct(m.resultsType, m.results),
			fmt.Sprintf("%s holds the results of %s.%s on the wire.", m.resultsType, s.name, m.name))
		if m.resultsCodec {
			g.codec.methods(f, m.resultsType, fmt.Sprintf("the results of %s.%s", s.name, m.name), m.results)
		}
	}
	if g.shared(m) {
		g.callDecls(f, s, m)
	}
	g.proxyMethod(f, s, m)
	g.handler(f, s, m)
}

// wireStruct declares the struct type name that carries vals, encoded as a
// CBOR array.
func (g *generator) wireStruct(name string, vals []*value) jen.Code {
	fields := []jen.Code{jen.Id("_").Struct().Tag(map[string]string{"cbor": ",toarray"})}
	for _, v := range vals {
		fields = append(fields, jen.Id(v.field).Add(g.wireType(v)))
	}
	return jen.Type().Id(name).Struct(fields...)
}

// wireType returns the type of v's field in a wire struct.
func (g *generator) wireType(v *value) jen.Code {
	switch v.passing {
	case byReference:
		return cg("Ref")
	case asStream:
		return cg("StreamRef")
	}
	return g.typeCode(v.typ)
}

// signature returns the parameters and results of the proxy method for m.
func (g *generator) signature(m *method) (params, results []jen.Code) {
	params = []jen.Code{jen.Id(g.id.ctx).Qual("context", "Context")}
	for i, p := range m.params {
		if m.variadic && i == len(m.params)-1 {
			slice, ok := types.Unalias(p.typ).(*types.Slice)
			if !ok {
				g.fail(fmt.Errorf("internal error: method %s: variadic parameter of type %s", m.name, p.typ))
				continue
			}
			params = append(params, jen.Id(p.local).Op("...").Add(g.typeCode(slice.Elem())))
			continue
		}
		params = append(params, jen.Id(p.local).Add(g.typeCode(p.typ)))
	}
	for _, r := range m.results {
		results = append(results, g.typeCode(r.typ))
	}
	return params, append(results, jen.Error())
}

// failWith returns the statement that returns the zero values of m's
// results and err.
func (g *generator) failWith(m *method, err jen.Code) jen.Code {
	vals := make([]jen.Code, 0, len(m.results)+1)
	for _, r := range m.results {
		vals = append(vals, g.zeroCode(r.typ))
	}
	return jen.Return(append(vals, err)...)
}

// proxyMethod writes the method of the proxy that calls m remotely.
func (g *generator) proxyMethod(f *jen.File, s *service, m *method) {
	id := g.id
	c := jen.Id(id.recv).Dot("c")
	errIsNil := jen.Id(id.err).Op("!=").Nil()
	var body []jen.Code

	// Arguments: export references and streams, then fill in the struct.
	argsPtr, resPtr := jen.Nil(), jen.Nil()
	// exported are the references and streams exported so far: a failure
	// takes them back (see runtime.NotSent).
	var exported []jen.Code
	undo := func() []jen.Code {
		if len(exported) == 0 {
			return nil
		}
		return []jen.Code{c.Clone().Dot("Unexport").Call(exported...)}
	}
	if len(m.params) > 0 {
		vals := make([]jen.Code, len(m.params))
		for i, p := range m.params {
			switch p.passing {
			case byReference:
				body = append(body,
					jen.List(jen.Id(p.wire), jen.Id(id.err)).Op(":=").Add(c.Clone()).Dot("Export").Call(jen.Id(p.local), jen.Id(p.ref.desc)),
					jen.If(errIsNil.Clone()).Block(append(undo(), g.failWith(m, jen.Id(id.err)))...))
				exported = append(exported, jen.Id(p.wire))
			case asStream:
				body = append(body,
					// The call's context bounds the stream's life.
					jen.List(jen.Id(p.wire), jen.Id(id.err)).Op(":=").Add(c.Clone()).Dot("ExportReader").Call(jen.Id(id.ctx), jen.Id(p.local)),
					jen.If(errIsNil.Clone()).Block(append(undo(), g.failWith(m, jen.Id(id.err)))...))
				exported = append(exported, jen.Id(p.wire))
			}
			src := p.local
			if p.wire != "" {
				src = p.wire
			}
			vals[i] = jen.Id(p.field).Op(":").Id(src)
		}
		if g.shared(m) {
			body = append(body, g.sharedVar(m), jen.Id(id.wire).Dot("args").Op("=").Id(m.argsType).Values(vals...))
		} else {
			body = append(body, jen.Id(id.args).Op(":=").Id(m.argsType).Values(vals...))
		}
		argsPtr = jen.Op("&").Add(g.argsVar(m))
	}
	if len(m.results) > 0 {
		if !g.shared(m) {
			body = append(body, jen.Var().Id(id.res).Id(m.resultsType))
		}
		resPtr = jen.Op("&").Add(g.resVar(m))
	}
	call := c.Clone().Dot("Call").Call(jen.Id(id.ctx), jen.Id(m.desc), argsPtr, resPtr)

	// onError takes back what was exported when the call was not sent.
	onError := []jen.Code{g.failWith(m, jen.Id(id.err))}
	if len(exported) > 0 {
		onError = append([]jen.Code{jen.If(rt("NotSent").Call(jen.Id(id.err))).Block(undo()...)}, onError...)
	}
	switch {
	case len(m.results) == 0 && len(exported) == 0:
		body = append(body, jen.Return(call))
	case len(m.results) == 0:
		body = append(body, jen.If(jen.Id(id.err).Op(":=").Add(call), errIsNil.Clone()).Block(onError...), jen.Return(jen.Nil()))
	default:
		body = append(body, jen.If(jen.Id(id.err).Op(":=").Add(call), errIsNil.Clone()).Block(onError...))
		// Results: import references and streams, then return.
		out := make([]jen.Code, 0, len(m.results)+1)
		for _, r := range m.results {
			field := g.resVar(m).Dot(r.field)
			switch r.passing {
			case byReference:
				body = append(body,
					jen.List(jen.Id(r.local), jen.Id(id.err)).Op(":=").Id(r.ref.fromRef).Call(c.Clone(), field),
					jen.If(errIsNil.Clone()).Block(g.failWith(m, jen.Id(id.err))))
				out = append(out, jen.Id(r.local))
			case asStream:
				body = append(body,
					jen.List(jen.Id(r.local), jen.Id(id.err)).Op(":=").Add(c.Clone()).Dot("ImportReader").Call(field),
					jen.If(errIsNil.Clone()).Block(g.failWith(m, jen.Id(id.err))))
				out = append(out, jen.Id(r.local))
			default:
				out = append(out, field)
			}
		}
		body = append(body, jen.Return(append(out, jen.Nil())...))
	}

	params, results := g.signature(m)
	fn := jen.Func().Params(jen.Id(id.recv).Op("*").Id(s.proxy)).Id(m.name).Params(params...)
	if len(results) == 1 {
		fn.Add(results[0])
	} else {
		fn.Params(results...)
	}
	decl(f, fn.Block(body...), fmt.Sprintf("%s calls %s.%s on the remote node.", m.name, s.name, m.name))
}

// handler writes the function that serves m for the runtime.
func (g *generator) handler(f *jen.File, s *service, m *method) {
	id := g.id
	call := jen.Id(id.call)
	ifErr := func() jen.Code {
		return jen.If(jen.Id(id.err).Op("!=").Nil()).Block(jen.Return(jen.Id(id.err)))
	}
	var body []jen.Code

	// Arguments: decode, then import references and streams.
	args := []jen.Code{jen.Id(id.ctx)}
	if len(m.params) > 0 {
		if g.shared(m) {
			body = append(body, g.sharedVar(m))
		} else {
			body = append(body, jen.Var().Id(id.args).Id(m.argsType))
		}
		body = append(body,
			jen.If(jen.Id(id.err).Op(":=").Add(call.Clone()).Dot("Decode").Call(jen.Op("&").Add(g.argsVar(m))), jen.Id(id.err).Op("!=").Nil()).
				Block(jen.Return(jen.Id(id.err))))
	}
	for i, p := range m.params {
		field := g.argsVar(m).Dot(p.field)
		arg := field
		switch p.passing {
		case byReference:
			body = append(body,
				jen.List(jen.Id(p.local), jen.Id(id.err)).Op(":=").Id(p.ref.fromRef).Call(call.Clone(), field),
				ifErr())
			arg = jen.Id(p.local)
		case asStream:
			body = append(body,
				jen.List(jen.Id(p.local), jen.Id(id.err)).Op(":=").Add(call.Clone()).Dot("ImportReader").Call(field),
				ifErr())
			arg = jen.Id(p.local)
		}
		if m.variadic && i == len(m.params)-1 {
			arg = arg.Op("...")
		}
		args = append(args, arg)
	}
	invoke := jen.Id(id.impl).Assert(jen.Id(s.name)).Dot(m.name).Call(args...)

	if len(m.results) == 0 {
		body = append(body, jen.Return(invoke))
	} else {
		// Results: call, then export references and streams.
		locals := make([]jen.Code, 0, len(m.results)+1)
		vals := make([]jen.Code, len(m.results))
		for i, r := range m.results {
			locals = append(locals, jen.Id(r.local))
			vals[i] = jen.Id(r.field).Op(":").Id(r.local)
		}
		body = append(body, jen.List(append(locals, jen.Id(id.err))...).Op(":=").Add(invoke), ifErr())
		for i, r := range m.results {
			switch r.passing {
			case byReference:
				body = append(body,
					jen.List(jen.Id(r.wire), jen.Id(id.err)).Op(":=").Add(call.Clone()).Dot("Export").Call(jen.Id(r.local), jen.Id(r.ref.desc)),
					ifErr())
				vals[i] = jen.Id(r.field).Op(":").Id(r.wire)
			case asStream:
				body = append(body,
					jen.List(jen.Id(r.wire), jen.Id(id.err)).Op(":=").Add(call.Clone()).Dot("ExportReader").Call(jen.Id(r.local)),
					ifErr())
				vals[i] = jen.Id(r.field).Op(":").Id(r.wire)
			}
		}
		if g.shared(m) {
			body = append(body,
				jen.Id(id.wire).Dot("res").Op("=").Id(m.resultsType).Values(vals...),
				jen.Return(call.Clone().Dot("Reply").Call(jen.Op("&").Id(id.wire).Dot("res"))))
		} else {
			body = append(body, jen.Return(call.Clone().Dot("Reply").Call(jen.Op("&").Id(m.resultsType).Values(vals...))))
		}
	}

	decl(f, jen.Func().Id(m.handler).
		Params(jen.Id(id.ctx).Qual("context", "Context"), jen.Id(id.impl).Any(), jen.Id(id.call).Add(cg("ServerCall"))).
		Error().
		Block(body...),
		fmt.Sprintf("%s serves %s.%s: it decodes the arguments, calls impl and", m.handler, s.name, m.name),
		"replies with the results.")
}

// shared reports whether m has both arguments and results: generated code
// then keeps both in one struct, so that a call allocates them at once.
func (g *generator) shared(m *method) bool {
	return len(m.params) > 0 && len(m.results) > 0
}

// sharedVar takes a recycled struct for m's arguments and results from its
// pool, and gives it back when the function returns.
func (g *generator) sharedVar(m *method) jen.Code {
	return jen.Id(g.id.wire).Op(":=").Id(m.callPool).Dot("Get").Call().Assert(jen.Op("*").Id(m.callType)).
		Line().Defer().Id(g.id.wire).Dot("recycle").Call()
}

// callDecls declares the recycled struct of m's arguments and results, its
// pool and its recycle method.
func (g *generator) callDecls(f *jen.File, s *service, m *method) {
	decl(f, jen.Type().Id(m.callType).Struct(
		jen.Id("args").Id(m.argsType),
		jen.Id("res").Id(m.resultsType),
	), fmt.Sprintf("%s holds the arguments and results of one call of %s.%s. It is", m.callType, s.name, m.name),
		"recycled, so that a call allocates neither.")
	decl(f, jen.Var().Id(m.callPool).Op("=").Qual("sync", "Pool").Values(jen.Id("New").Op(":").Func().Params().Any().Block(
		jen.Return(jen.New(jen.Id(m.callType))))),
		fmt.Sprintf("%s recycles %s values.", m.callPool, m.callType))
	decl(f, jen.Func().Params(jen.Id("c").Op("*").Id(m.callType)).Id("recycle").Params().Block(
		jen.Op("*").Id("c").Op("=").Id(m.callType).Values(),
		jen.Id(m.callPool).Dot("Put").Call(jen.Id("c")),
	), "recycle clears c, which no longer holds anything of the call, and returns it to its pool.")
}

// argsVar is the expression of m's arguments struct.
func (g *generator) argsVar(m *method) *jen.Statement {
	if g.shared(m) {
		return jen.Id(g.id.wire).Dot("args")
	}
	return jen.Id(g.id.args)
}

// resVar is the expression of m's results struct.
func (g *generator) resVar(m *method) *jen.Statement {
	if g.shared(m) {
		return jen.Id(g.id.wire).Dot("res")
	}
	return jen.Id(g.id.res)
}
