package wire

import "unsafe"

// The typed reads. Each accepts null (or undefined) as the zero value, as
// the reflective decoder does, and converts to T, which may be a named type.

// Signed is the set of signed integer types.
type Signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

// Unsigned is the set of unsigned integer types.
type Unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// Int reads an integer that fits in T.
func Int[T Signed](d *Decoder) (T, error) {
	if d.Nil() {
		return 0, nil
	}
	v, err := d.readInt(int(unsafe.Sizeof(T(0))) * 8)
	return T(v), err
}

// Uint reads an unsigned integer that fits in T.
func Uint[T Unsigned](d *Decoder) (T, error) {
	if d.Nil() {
		return 0, nil
	}
	v, err := d.readUint(int(unsafe.Sizeof(T(0))) * 8)
	return T(v), err
}

// Float reads a float of any precision that fits in T.
func Float[T ~float32 | ~float64](d *Decoder) (T, error) {
	if d.Nil() {
		return 0, nil
	}
	v, err := d.readFloat(int(unsafe.Sizeof(T(0))) * 8)
	return T(v), err
}

// Bool reads a boolean.
func Bool[T ~bool](d *Decoder) (T, error) {
	if d.Nil() {
		return false, nil
	}
	v, err := d.readBool()
	return T(v), err
}

// String reads a text string. Its bytes are taken as they are, valid UTF-8
// or not, as the runtime's reflective decoder does.
func String[T ~string](d *Decoder) (T, error) {
	if d.Nil() {
		return "", nil
	}
	b, err := d.str(majorText, "a text string")
	return T(b), err
}

// Bytes reads a byte string into a new slice (empty, not nil, for an
// empty string; nil for null).
func Bytes[T ~[]byte](d *Decoder) (T, error) {
	if d.Nil() {
		return nil, nil
	}
	b, err := d.str(majorBytes, "a byte string")
	if err != nil {
		return nil, err
	}
	return append(make(T, 0, len(b)), b...), nil
}
