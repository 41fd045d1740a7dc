package gen

import (
	"fmt"
	"go/types"
	"strings"

	"github.com/dave/jennifer/jen"
)

// typeCode returns the code that spells t in the generated file, as it is
// written in the source (aliases keep their name).
func (g *generator) typeCode(t types.Type) *jen.Statement {
	switch u := t.(type) {
	case *types.Basic:
		return jen.Id(u.Name())
	case *types.Alias:
		return g.objCode(u.Obj(), u.TypeArgs())
	case *types.Named:
		return g.objCode(u.Obj(), u.TypeArgs())
	case *types.Pointer:
		return jen.Op("*").Add(g.typeCode(u.Elem()))
	case *types.Slice:
		return jen.Index().Add(g.typeCode(u.Elem()))
	case *types.Array:
		return jen.Index(jen.Lit(int(u.Len()))).Add(g.typeCode(u.Elem()))
	case *types.Map:
		return jen.Map(g.typeCode(u.Key())).Add(g.typeCode(u.Elem()))
	case *types.Struct:
		fields := make([]jen.Code, u.NumFields())
		for i := range fields {
			f := u.Field(i)
			var field *jen.Statement
			if f.Embedded() {
				field = g.typeCode(f.Type())
			} else {
				field = jen.Id(f.Name()).Add(g.typeCode(f.Type()))
			}
			if tag := u.Tag(i); tag != "" {
				if strings.Contains(tag, "`") {
					field.Lit(tag)
				} else {
					field.Op("`" + tag + "`")
				}
			}
			fields[i] = field
		}
		return jen.Struct(fields...)
	case *types.Interface:
		if u.Empty() {
			return jen.Interface()
		}
	}
	// Validation refuses every other type before code is generated.
	g.fail(fmt.Errorf("internal error: cannot write type %s", t))
	return jen.Id("invalid")
}

// objCode returns the code that names the type obj, instantiated with
// args if it is generic.
func (g *generator) objCode(obj *types.TypeName, args *types.TypeList) *jen.Statement {
	var code *jen.Statement
	if p := obj.Pkg(); p == nil || p == g.pkg {
		code = jen.Id(obj.Name())
	} else {
		code = jen.Qual(p.Path(), obj.Name())
	}
	if args.Len() > 0 {
		list := make([]jen.Code, args.Len())
		for i := range list {
			list[i] = g.typeCode(args.At(i))
		}
		code.Types(list...)
	}
	return code
}

// zeroCode returns an expression for the zero value of t.
func (g *generator) zeroCode(t types.Type) *jen.Statement {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return jen.False()
		case u.Info()&types.IsString != 0:
			return jen.Lit("")
		case u.Info()&types.IsNumeric != 0:
			return jen.Lit(0)
		}
	case *types.Struct, *types.Array:
		return g.typeCode(t).Values()
	}
	return jen.Nil()
}

// forEachTypeName calls fn for every type name that the code spelling t
// (see typeCode) contains: named types and aliases, with their type
// arguments, but not what they stand for.
func forEachTypeName(t types.Type, fn func(*types.TypeName)) {
	seen := map[types.Type]bool{}
	var visit func(t types.Type)
	visitObj := func(obj *types.TypeName, args *types.TypeList) {
		fn(obj)
		for i := 0; i < args.Len(); i++ {
			visit(args.At(i))
		}
	}
	visit = func(t types.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		switch u := t.(type) {
		case *types.Alias:
			visitObj(u.Obj(), u.TypeArgs())
		case *types.Named:
			visitObj(u.Obj(), u.TypeArgs())
		case *types.Pointer:
			visit(u.Elem())
		case *types.Slice:
			visit(u.Elem())
		case *types.Array:
			visit(u.Elem())
		case *types.Map:
			visit(u.Key())
			visit(u.Elem())
		case *types.Struct:
			for i := 0; i < u.NumFields(); i++ {
				visit(u.Field(i).Type())
			}
		}
	}
	visit(t)
}
