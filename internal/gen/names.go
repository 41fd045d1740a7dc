package gen

import (
	"go/token"
	"go/types"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// lowerPrefix returns name with its leading upper-case word in lower case,
// the way Go spells a lower-case identifier derived from a name:
// "Store" -> "store", "HTTPServer" -> "httpServer", "URL" -> "url".
func lowerPrefix(name string) string {
	runes := []rune(name)
	n := 0
	for n < len(runes) && unicode.IsUpper(runes[n]) {
		n++
	}
	switch {
	case n == 0:
		return name
	case n > 1 && n < len(runes) && unicode.IsLower(runes[n]):
		// "HTTPServer": the last capital starts the next word.
		n--
	}
	for i := 0; i < n; i++ {
		runes[i] = unicode.ToLower(runes[i])
	}
	return string(runes)
}

// upperFirst returns name with its first letter in upper case.
func upperFirst(name string) string {
	r, size := utf8.DecodeRuneInString(name)
	if r == utf8.RuneError {
		return name
	}
	return string(unicode.ToUpper(r)) + name[size:]
}

// fieldNames returns the names of the fields that carry parameters with the
// given source names (ctx excluded): the name with its first letter in upper
// case, or A1, A2... by position for an unnamed or blank parameter, for a
// name that cannot be made exported and for names that clash.
func fieldNames(names []string) []string {
	positional := func(i int) string { return "A" + strconv.Itoa(i+1) }
	out := make([]string, len(names))
	usePos := make([]bool, len(names))
	for i, n := range names {
		if n == "" || n == "_" {
			usePos[i] = true
			continue
		}
		out[i] = upperFirst(n)
		if !token.IsExported(out[i]) {
			usePos[i] = true
		}
	}
	// Resolve clashes until none is left: each round only turns names into
	// distinct positional ones, so two rounds always suffice.
	for changed := true; changed; {
		changed = false
		count := map[string]int{}
		for i := range names {
			if usePos[i] {
				out[i] = positional(i)
			}
			count[out[i]]++
		}
		for i := range names {
			if !usePos[i] && count[out[i]] > 1 {
				usePos[i] = true
				changed = true
			}
		}
	}
	return out
}

// nameSet is a set of identifiers in use, from which fresh ones are drawn.
type nameSet map[string]bool

// fresh returns want if it is a usable identifier not yet in s, otherwise
// fallback, otherwise fallback followed by as many underscores as needed;
// the result is added to s.
func (s nameSet) fresh(want, fallback string) string {
	name := want
	if name == "" || name == "_" || s[name] || !token.IsIdentifier(name) {
		name = fallback
		for s[name] {
			name += "_"
		}
	}
	s[name] = true
	return name
}

// universeNames returns the predeclared types and constants (and nil), which
// generated code may use in the bodies it writes: a parameter or import
// named after one would shadow it.
func universeNames() nameSet {
	s := nameSet{}
	for _, name := range types.Universe.Names() {
		switch types.Universe.Lookup(name).(type) {
		case *types.TypeName, *types.Const, *types.Nil:
			s[name] = true
		}
	}
	return s
}

// relativeTo returns file relative to dir when it is inside dir, and file
// unchanged otherwise.
func relativeTo(dir, file string) string {
	if dir == "" || !filepath.IsAbs(file) {
		return file
	}
	rel, err := filepath.Rel(dir, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return file
	}
	return rel
}

// canImport reports whether the package at path from may import the package
// at path to under the go command's rule for internal directories.
func canImport(from, to string) bool {
	elems := strings.Split(to, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if elems[i] != "internal" {
			continue
		}
		parent := strings.Join(elems[:i], "/")
		if parent == "" {
			// A standard-library internal package: only the standard library
			// itself (paths without a dot in the first element) may use it.
			return !strings.Contains(strings.Split(from, "/")[0], ".")
		}
		if from != parent && !strings.HasPrefix(from, parent+"/") {
			return false
		}
	}
	return true
}
