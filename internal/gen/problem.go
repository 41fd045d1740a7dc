package gen

import (
	"cmp"
	"fmt"
	"go/token"
	"slices"
	"strings"
)

// A Problem is one reason why proxygen refuses to generate code: an interface
// or a method that breaks the rules of a Trellis service, or a generated name
// that would clash with the package's own.
type Problem struct {
	// Pos is where the problem is; its Filename is relative to the package
	// directory when the file is inside it. Pos is invalid for problems that
	// belong to no source position, such as a -type name that does not exist.
	Pos token.Position
	// Msg describes the problem, starting with the interface, the -type name
	// or the method it concerns.
	Msg string
	// CannotCross marks a value that cannot cross a network as it is (a
	// marshal transformer, named with -transformed, may carry it).
	CannotCross bool
}

// String returns the problem as "file:line:col: msg", or just msg when the
// problem has no position.
func (p Problem) String() string {
	if !p.Pos.IsValid() {
		return p.Msg
	}
	return p.Pos.String() + ": " + p.Msg
}

// Problems is the error returned when proxygen refuses to generate code. It
// holds every problem found, sorted by position; problems without a position
// come first.
type Problems []Problem

// Error returns the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problemList collects problems while an input is validated.
type problemList struct {
	dir   string // package directory, to shorten file names
	items Problems
}

// addf records a problem at pos (which may be invalid).
func (l *problemList) addf(pos token.Position, format string, args ...any) {
	if pos.IsValid() {
		pos.Filename = relativeTo(l.dir, pos.Filename)
	}
	l.items = append(l.items, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected problems, sorted and without duplicates, as an
// error, or nil when there are none.
func (l *problemList) err() error {
	if len(l.items) == 0 {
		return nil
	}
	ps := slices.Clone(l.items)
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(a.Pos.Filename, b.Pos.Filename); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Pos.Line, b.Pos.Line); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Pos.Column, b.Pos.Column); c != 0 {
			return c
		}
		return cmp.Compare(a.Msg, b.Msg)
	})
	return Problems(slices.Compact(ps))
}
