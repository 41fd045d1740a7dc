package gen

import (
	"strings"
	"testing"
)

// Which wire structs get a generated codec: those whose every type package
// wire encodes the reflective encoder's way; the others are left to it.
func TestCodecEligibility(t *testing.T) {
	dir := newModule(t, map[string]string{"svc/svc.go": `package svc

import (
	"context"
	"io"
	"time"
)

type Plain struct {
	N    int
	Tags []string
	Next *Plain
	skip int ` + "`cbor:\"-\"`" + `
}

type Tagged struct {
	N int ` + "`cbor:\"n\"`" + `
}

type Base struct{ ID int }

type Embeds struct {
	Base
	X int
}

type Opaque struct{ b []byte }

func (o Opaque) MarshalBinary() ([]byte, error)   { return o.b, nil }
func (o *Opaque) UnmarshalBinary(b []byte) error { o.b = b; return nil }

type Callback interface {
	Done(ctx context.Context, n int) error
}

type S interface {
	Plain(ctx context.Context, p Plain, m map[string]*Plain) (Plain, error)
	Ref(ctx context.Context, c Callback) error
	Stream(ctx context.Context, r io.Reader) (io.Reader, error)
	When(ctx context.Context, t time.Time) error
	Array(ctx context.Context, a [4]int) error
	Tagged(ctx context.Context, t Tagged) error
	Embeds(ctx context.Context, e Embeds) error
	Opaque(ctx context.Context, o Opaque) error
	Any(ctx context.Context, x []byte, f float32) (map[int8]bool, error)
}
`})
	out, err := generateIn(t, dir+"/svc", "S", "Callback")
	if err != nil {
		t.Fatal(err)
	}
	src := string(out.Source)
	tests := []struct {
		wireStruct string
		codec      bool
	}{
		{"sPlainArgs", true},
		{"sPlainResults", true},
		{"sRefArgs", true},
		{"sStreamArgs", true},
		{"sStreamResults", true},
		{"sWhenArgs", false},
		{"sArrayArgs", false},
		{"sTaggedArgs", false},
		{"sEmbedsArgs", false},
		{"sOpaqueArgs", false},
		{"sAnyArgs", true},
		{"sAnyResults", true},
	}
	for _, tt := range tests {
		has := strings.Contains(src, "func (v *"+tt.wireStruct+") AppendCBOR(") && strings.Contains(src, "func (v *"+tt.wireStruct+") DecodeCBOR(")
		if has != tt.codec {
			t.Errorf("%s: generated codec %v, want %v", tt.wireStruct, has, tt.codec)
		}
	}
	for _, fn := range []string{"func wireAppendPlain(", "func wireDecodePlain("} {
		if strings.Count(src, fn) != 1 {
			t.Errorf("%s appears %d times, want once", fn, strings.Count(src, fn))
		}
	}
	if strings.Contains(src, "wireAppendTagged") || strings.Contains(src, `"skip"`) {
		t.Errorf("a type left to the reflective codec, or a field it skips, has generated code")
	}
}
