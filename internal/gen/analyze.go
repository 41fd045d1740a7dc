package gen

import (
	"cmp"
	"go/ast"
	"go/token"
	"go/types"
	"slices"
	"strconv"
	"strings"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// reservedMethods are the names of the methods a generated proxy has besides
// those of its interface (c is its field: a method may not share its name).
var reservedMethods = map[string]string{
	"TrellisClient":   "method TrellisClient",
	"c":               "field c",
	"TrellisBalancer": "method TrellisBalancer (its cluster proxy)",
	"b":               "field b (its cluster proxy)",
}

// idempotentDirective, alone on a line of a method's doc comment, declares
// the method idempotent.
const idempotentDirective = "//trellis:idempotent"

// An analyzer checks the interfaces of the -type set against the rules of a
// Trellis service and builds the model the generator writes code from.
type analyzer struct {
	pkg      *types.Package
	fset     *token.FileSet
	problems *problemList
	services map[*types.TypeName]*service
	// sawInvalid is set when a served signature uses a type that does not
	// type-check: the package's type errors are then reported too.
	sawInvalid bool
	// transformed holds the types (as "path.Name", or "Name" for the
	// package's own) that cross through a marshal transformer registered at
	// run time (runtime.RegisterTransformer): they are not looked into.
	transformed map[string]bool
	// docs holds the doc comments of the interface methods declared in the
	// package, by the position of their names.
	docs map[token.Pos]*ast.CommentGroup
	// noCluster turns cluster proxies off.
	noCluster bool
}

// isTransformed reports whether obj names a type given with -transformed:
// one that a marshal transformer replaces on the wire, so it is not looked
// into.
func (a *analyzer) isTransformed(obj *types.TypeName) bool {
	return obj.Pkg() != nil && a.transformed[obj.Pkg().Path()+"."+obj.Name()]
}

// analyze validates the interfaces named in typeNames and returns their
// model, sorted by name, or a Problems error that lists every problem found.
func analyze(l *loaded, dir string, typeNames, transformed []string, noCluster bool) ([]*service, error) {
	a := &analyzer{
		pkg:         l.pkg.Types,
		fset:        l.pkg.Fset,
		problems:    &problemList{dir: dir},
		services:    map[*types.TypeName]*service{},
		transformed: map[string]bool{},
		docs:        methodDocs(l.pkg.Syntax),
		noCluster:   noCluster,
	}
	for _, t := range transformed {
		if !strings.Contains(t, ".") {
			t = a.pkg.Path() + "." + t
		}
		a.transformed[t] = true
	}
	names := slices.Clone(typeNames)
	slices.Sort(names)
	names = slices.Compact(names)

	var services []*service
	ifaces := map[*service]*types.Interface{}
	for _, name := range names {
		s, iface := a.lookup(name)
		if s != nil {
			services = append(services, s)
			ifaces[s] = iface
			a.services[s.obj] = s
		}
	}
	// Methods are checked once every service is known, so that any of them
	// can pass any other by reference.
	for _, s := range services {
		a.methods(s, ifaces[s])
	}
	if a.sawInvalid {
		for _, e := range l.typeErrors {
			a.problems.addf(parsePosition(e.Pos), "%s", e.Msg)
		}
	}
	for _, s := range services {
		nameService(s)
	}
	a.checkNames(services)
	if err := a.problems.err(); err != nil {
		return nil, err
	}
	findInitCycles(services)
	return services, nil
}

// position returns the position of pos, or of fallback when pos is unknown
// (as for a parameter without a name in some export data).
func (a *analyzer) position(pos, fallback token.Pos) token.Position {
	if pos.IsValid() {
		return a.fset.Position(pos)
	}
	return a.fset.Position(fallback)
}

// lookup returns the service for the -type name, or nil after recording why
// there can be none.
func (a *analyzer) lookup(name string) (*service, *types.Interface) {
	obj, ok := a.pkg.Scope().Lookup(name).(*types.TypeName)
	if !ok {
		a.problems.addf(token.Position{}, "-type %s: no such interface in package %s", name, a.pkg.Name())
		return nil, nil
	}
	pos := a.fset.Position(obj.Pos())
	if obj.IsAlias() {
		a.problems.addf(pos, "-type %s: %s is an alias: serve the interface it stands for from its own package", name, name)
		return nil, nil
	}
	named, ok := obj.Type().(*types.Named)
	if !ok {
		a.problems.addf(pos, "-type %s: no such interface in package %s", name, a.pkg.Name())
		return nil, nil
	}
	iface, ok := named.Underlying().(*types.Interface)
	if !ok {
		a.problems.addf(pos, "-type %s: %s is not an interface (it is %s)", name, name, a.typeString(named.Underlying()))
		return nil, nil
	}
	if named.TypeParams().Len() > 0 {
		a.problems.addf(pos, "interface %s: generic interfaces cannot be served", name)
		return nil, nil
	}
	if !iface.IsMethodSet() {
		a.problems.addf(pos, "interface %s: it has type constraints, so it can only constrain type parameters and cannot be served", name)
		return nil, nil
	}
	full := a.pkg.Path() + "." + name
	return &service{obj: obj, name: name, fullName: full, id: codegen.ServiceID(full), cluster: !a.noCluster}, iface
}

// methodDocs returns the doc comments of the interface methods declared in
// files, by the position of their names.
func methodDocs(files []*ast.File) map[token.Pos]*ast.CommentGroup {
	docs := map[token.Pos]*ast.CommentGroup{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if it, ok := n.(*ast.InterfaceType); ok && it.Methods != nil {
				for _, field := range it.Methods.List {
					for _, name := range field.Names {
						if field.Doc != nil {
							docs[name.Pos()] = field.Doc
						}
					}
				}
			}
			return true
		})
	}
	return docs
}

// hasDirective reports whether doc has line alone on a line.
func hasDirective(doc *ast.CommentGroup, line string) bool {
	if doc == nil {
		return false
	}
	for _, c := range doc.List {
		if strings.TrimSpace(c.Text) == line {
			return true
		}
	}
	return false
}

// methods checks every method of iface, embedded ones included, and
// records the valid ones in s sorted by name.
func (a *analyzer) methods(s *service, iface *types.Interface) {
	fns := make([]*types.Func, iface.NumMethods())
	for i := range fns {
		fns[i] = iface.Method(i)
	}
	slices.SortFunc(fns, func(x, y *types.Func) int { return cmp.Compare(x.Name(), y.Name()) })
	for _, fn := range fns {
		if m := a.method(s, fn); m != nil {
			s.methods = append(s.methods, m)
		}
	}
}

// method checks one method and returns its model, or nil after recording
// every problem it has.
func (a *analyzer) method(s *service, fn *types.Func) *method {
	before := len(a.problems.items)
	pos := a.fset.Position(fn.Pos())
	name := fn.Name()
	if !fn.Exported() && fn.Pkg() != a.pkg {
		// Nothing else about the method matters.
		a.problems.addf(pos, "method %s: it is unexported in package %s, so no other package can implement it", name, fn.Pkg().Path())
		return nil
	}
	if what, ok := reservedMethods[name]; ok {
		a.problems.addf(pos, "method %s: the generated proxy has a %s of its own", name, what)
	}
	sig, ok := fn.Type().(*types.Signature)
	if !ok {
		a.problems.addf(pos, "method %s: it has no signature", name)
		return nil
	}
	m := &method{name: name, variadic: sig.Variadic(), idempotent: hasDirective(a.docs[fn.Pos()], idempotentDirective)}
	m.signature = signatureString(sig)
	m.id = codegen.MethodID(s.fullName, name, m.signature)

	params, results := sig.Params(), sig.Results()
	first := 0
	if params.Len() > 0 && isContext(params.At(0).Type()) {
		first = 1
	} else {
		a.problems.addf(pos, "method %s: first parameter must be context.Context", name)
	}
	end := results.Len()
	if end > 0 && isError(results.At(end-1).Type()) {
		end--
	} else {
		a.problems.addf(pos, "method %s: last result must be error", name)
	}

	var sourceNames []string
	for i := first; i < params.Len(); i++ {
		p := params.At(i)
		label, root := "parameter "+p.Name(), p.Name()
		if p.Name() == "" || p.Name() == "_" {
			label, root = "parameter #"+strconv.Itoa(i+1), "#"+strconv.Itoa(i+1)
		}
		at := a.position(p.Pos(), fn.Pos())
		v := a.value(p.Type(), at, "method "+name+": "+label, root)
		m.params = append(m.params, v)
		if v != nil && v.passing == asStream {
			m.oneShot = true
		}
		sourceNames = append(sourceNames, p.Name())
	}
	for i := 0; i < end; i++ {
		r := results.At(i)
		idx := strconv.Itoa(i)
		at := a.position(r.Pos(), fn.Pos())
		m.results = append(m.results, a.value(r.Type(), at, "method "+name+": result "+idx, "R"+idx))
	}
	if len(a.problems.items) > before {
		return nil
	}
	m.sourceNames = sourceNames
	return m
}

// value classifies a parameter or result of type t and checks that it can
// cross the network. prefix starts the messages ("method M: parameter p"),
// root is the start of the type paths in them.
func (a *analyzer) value(t types.Type, at token.Position, prefix, root string) *value {
	v := &value{typ: t}
	if isStream(t) {
		v.passing = asStream
		return v
	}
	if s := a.service(t); s != nil {
		v.passing = byReference
		v.ref = s
		s.byRef = true
		return v
	}
	c := &crossing{a: a, at: at, prefix: prefix, seen: map[string]bool{}}
	c.walk(t, root, nil, 0)
	a.spell(t, func(reason string) {
		c.report(root, t, reason)
	})
	for _, tt := range c.transformed {
		a.spell(tt, func(reason string) {
			a.problems.addf(at, "%s: -transformed type %s is held inside the value, but generated code must name it (to check that a transformer is registered for it): %s", prefix, a.typeString(tt), reason)
		})
	}
	v.transformed = c.transformed
	return v
}

// service returns the service of the -type set that t is, or nil.
func (a *analyzer) service(t types.Type) *service {
	if n, ok := types.Unalias(t).(*types.Named); ok {
		return a.services[n.Obj()]
	}
	return nil
}

// typeString writes t as messages show it: types of the package by their
// bare name, others qualified by their package's name.
func (a *analyzer) typeString(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string {
		if p == a.pkg {
			return ""
		}
		return p.Name()
	})
}

// checkNames records a problem for every generated package-level name that
// another generated name or a declaration of the package already uses.
func (a *analyzer) checkNames(services []*service) {
	owner := map[string]string{}
	for _, s := range services {
		for _, n := range s.generated() {
			if prev, ok := owner[n]; ok {
				a.problems.addf(a.fset.Position(s.obj.Pos()), "interface %s: generated name %s is also generated for interface %s: rename one of the interfaces or methods", s.name, n, prev)
				continue
			}
			owner[n] = s.name
			if obj := a.pkg.Scope().Lookup(n); obj != nil {
				a.problems.addf(a.fset.Position(obj.Pos()), "interface %s: %s is declared here, but the generated code for %s declares it too: rename it", s.name, n, s.name)
			}
		}
	}
}

// signatureString returns sig as the runtime sees it: without parameter
// names and with packages spelt by their full path, e.g.
// "func(context.Context, string) (example.com/kv.Entry, error)".
func signatureString(sig *types.Signature) string {
	strip := func(t *types.Tuple) *types.Tuple {
		vars := make([]*types.Var, t.Len())
		for i := range vars {
			vars[i] = types.NewParam(token.NoPos, nil, "", t.At(i).Type())
		}
		return types.NewTuple(vars...)
	}
	qualifier := func(p *types.Package) string { return p.Path() }
	params := sig.Params()
	if sig.Variadic() {
		// NewSignatureType insists on a final slice, which a type-checked
		// signature has; fall back to the signature as it is otherwise.
		if _, ok := params.At(params.Len() - 1).Type().(*types.Slice); !ok {
			return types.TypeString(sig, qualifier)
		}
	}
	unnamed := types.NewSignatureType(nil, nil, nil, strip(params), strip(sig.Results()), sig.Variadic())
	return types.TypeString(unnamed, qualifier)
}

// isNamed reports whether t is (an alias of) the named type path.name.
func isNamed(t types.Type, path, name string) bool {
	n, ok := types.Unalias(t).(*types.Named)
	if !ok || n.Obj().Pkg() == nil {
		return false
	}
	return n.Obj().Pkg().Path() == path && n.Obj().Name() == name
}

// isContext reports whether t is context.Context.
func isContext(t types.Type) bool { return isNamed(t, "context", "Context") }

// isStream reports whether t is io.Reader or io.ReadCloser.
func isStream(t types.Type) bool {
	return isNamed(t, "io", "Reader") || isNamed(t, "io", "ReadCloser")
}

// isError reports whether t is the predeclared error type.
func isError(t types.Type) bool {
	return types.Identical(t, types.Universe.Lookup("error").Type())
}
