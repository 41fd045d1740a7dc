package gen

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

// cl returns a qualified reference to name in package cluster.
func cl(name string) *jen.Statement { return jen.Qual(clusterPath, name) }

// cgen returns a qualified reference to name in package clustergen.
func cgen(name string) *jen.Statement { return jen.Qual(clustergenPath, name) }

// clusterProxy writes the cluster proxy of s: a value of the interface
// whose calls a clustergen.Balancer sends to a member serving it.
func (g *generator) clusterProxy(f *jen.File, s *service) {
	id := g.id
	balancer := cgen("Balancer").Types(jen.Id(s.name))
	decl(f, jen.Type().Id(s.clusterProxy).Struct(jen.Id("b").Op("*").Add(balancer)),
		fmt.Sprintf("%s is a %s whose calls go to the members of a cluster that", s.clusterProxy, s.name),
		fmt.Sprintf("serve %s, one member chosen per call by the proxy's policy.", s.name))

	decl(f, jen.Func().Id(s.newClusterProxy).
		Params(jen.Id("c").Op("*").Add(cl("Cluster")), jen.Id(id.opts).Op("...").Add(cl("ProxyOption"))).
		Op("*").Id(s.clusterProxy).
		Block(jen.Return(jen.Op("&").Id(s.clusterProxy).Values(jen.Id("b").Op(":").
			Add(cgen("NewBalancer")).Types(jen.Id(s.name)).Call(jen.Id("c"), jen.Id(s.desc), jen.Id(id.opts).Op("..."))))),
		fmt.Sprintf("%s returns a %s that calls the members of c serving %s,", s.newClusterProxy, s.name, s.name),
		"chosen per call by opts (default: the nearest).")

	decl(f, jen.Func().Params(jen.Id(id.recv).Op("*").Id(s.clusterProxy)).Id("TrellisBalancer").Params().
		Op("*").Add(balancer).
		Block(jen.Return(jen.Id(id.recv).Dot("b"))),
		fmt.Sprintf("TrellisBalancer returns the balancer behind %s (see cluster.CallAll).", id.recv))

	decl(f, jen.Var().Id("_").Id(s.name).Op("=").Parens(jen.Op("*").Id(s.clusterProxy)).Parens(jen.Nil()),
		fmt.Sprintf("%s implements %s.", s.clusterProxy, s.name))

	for _, m := range s.methods {
		g.clusterMethod(f, s, m)
	}
}

// clusterMethod writes the method of the cluster proxy that calls m on a
// member: it hands the balancer a function that calls m on the member's
// service value, and one that lists the arguments for a key function.
func (g *generator) clusterMethod(f *jen.File, s *service, m *method) {
	id := g.id
	args := []jen.Code{jen.Id(id.ctx)}
	list := make([]jen.Code, 0, len(m.params))
	for i, p := range m.params {
		list = append(list, jen.Id(p.local))
		if m.variadic && i == len(m.params)-1 {
			args = append(args, jen.Id(p.local).Op("..."))
		} else {
			args = append(args, jen.Id(p.local))
		}
	}
	argsFunc := jen.Nil()
	if len(list) > 0 {
		argsFunc = jen.Func().Params().Index().Any().Block(jen.Return(jen.Index().Any().Values(list...)))
	}
	invoke := jen.Id(id.member).Dot(m.name).Call(args...)

	var body []jen.Code
	var do jen.Code
	if len(m.results) == 0 {
		do = jen.Func().Params(jen.Id(id.member).Id(s.name)).Error().Block(jen.Return(invoke))
		body = append(body, jen.Return(jen.Id(id.recv).Dot("b").Dot("Call").
			Call(jen.Id(id.ctx), jen.Id(m.desc), argsFunc, do)))
	} else {
		outs := make([]jen.Code, 0, len(m.results)+1)
		for _, r := range m.results {
			body = append(body, jen.Var().Id(r.local).Add(g.typeCode(r.typ)))
			outs = append(outs, jen.Id(r.local))
		}
		do = jen.Func().Params(jen.Id(id.member).Id(s.name)).Params(jen.Id(id.err).Error()).Block(
			jen.List(append(outs, jen.Id(id.err))...).Op("=").Add(invoke),
			jen.Return(jen.Id(id.err)),
		)
		body = append(body,
			jen.Id(id.err).Op(":=").Id(id.recv).Dot("b").Dot("Call").Call(jen.Id(id.ctx), jen.Id(m.desc), argsFunc, do),
			jen.Return(append(outs, jen.Id(id.err))...))
	}

	params, results := g.signature(m)
	fn := jen.Func().Params(jen.Id(id.recv).Op("*").Id(s.clusterProxy)).Id(m.name).Params(params...)
	if len(results) == 1 {
		fn.Add(results[0])
	} else {
		fn.Params(results...)
	}
	doc := []string{fmt.Sprintf("%s calls %s.%s on a member chosen by the proxy's policy.", m.name, s.name, m.name)}
	switch {
	case m.oneShot:
		doc = append(doc, "It passes a stream, so it is never retried.")
	case m.idempotent:
		doc = append(doc, "It is idempotent: a call that may have run is retried too.")
	}
	decl(f, fn.Block(body...), doc...)
}
