package wire

import (
	"encoding/binary"
	"math"
)

// CBOR major types, in the high three bits of an item's first byte.
const (
	majorUint   = 0 << 5
	majorNegint = 1 << 5
	majorBytes  = 2 << 5
	majorText   = 3 << 5
	majorArray  = 4 << 5
	majorMap    = 5 << 5
	majorTag    = 6 << 5
	majorSimple = 7 << 5
)

// Simple values and float heads (major type 7).
const (
	simpleFalse     = 0xf4
	simpleTrue      = 0xf5
	simpleNull      = 0xf6
	simpleUndefined = 0xf7
	headFloat16     = 0xf9
	headFloat32     = 0xfa
	headFloat64     = 0xfb
)

// appendHead appends the head of an item of major type major and argument n,
// in its shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= math.MaxUint8:
		return append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), n)
}

// AppendUint appends an unsigned integer.
func AppendUint(b []byte, v uint64) []byte { return appendHead(b, majorUint, v) }

// AppendInt appends a signed integer.
func AppendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendHead(b, majorNegint, uint64(-(v + 1)))
	}
	return appendHead(b, majorUint, uint64(v))
}

// AppendBool appends a boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, simpleTrue)
	}
	return append(b, simpleFalse)
}

// AppendNull appends null: a nil pointer, slice or map.
func AppendNull(b []byte) []byte { return append(b, simpleNull) }

// AppendString appends a text string. Its bytes go as they are, valid
// UTF-8 or not, as the reflective encoder does.
func AppendString(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

// AppendBytes appends a byte string, or null for a nil slice.
func AppendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return AppendNull(b)
	}
	return append(appendHead(b, majorBytes, uint64(len(v))), v...)
}

// AppendArrayHeader appends the head of an array of n items.
func AppendArrayHeader(b []byte, n int) []byte { return appendHead(b, majorArray, uint64(n)) }

// AppendMapHeader appends the head of a map of n pairs.
func AppendMapHeader(b []byte, n int) []byte { return appendHead(b, majorMap, uint64(n)) }

// AppendFloat64 appends a float64 in 8 bytes; NaN and the infinities go
// in the 2-byte form, as the reflective encoder sends them.
func AppendFloat64(b []byte, v float64) []byte {
	if h, ok := specialFloat(v); ok {
		return binary.BigEndian.AppendUint16(append(b, headFloat16), h)
	}
	return binary.BigEndian.AppendUint64(append(b, headFloat64), math.Float64bits(v))
}

// AppendFloat32 appends a float32 in 4 bytes, NaN and the infinities as
// AppendFloat64 does.
func AppendFloat32(b []byte, v float32) []byte {
	if h, ok := specialFloat(float64(v)); ok {
		return binary.BigEndian.AppendUint16(append(b, headFloat16), h)
	}
	return binary.BigEndian.AppendUint32(append(b, headFloat32), math.Float32bits(v))
}

// specialFloat returns the half-precision form of NaN and of ±Inf.
func specialFloat(v float64) (uint16, bool) {
	switch {
	case math.IsNaN(v):
		return 0x7e00, true
	case math.IsInf(v, 1):
		return 0x7c00, true
	case math.IsInf(v, -1):
		return 0xfc00, true
	}
	return 0, false
}
