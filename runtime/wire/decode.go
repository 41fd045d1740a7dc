package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Limits bound what a Decoder accepts, as runtime.DecodeLimits does for
// the reflective decoder. Zero fields take the runtime's defaults.
type Limits struct {
	MaxNesting       int // nested arrays and maps (default 32)
	MaxArrayElements int // items of one array (default 1<<20)
	MaxMapPairs      int // pairs of one map (default 1<<20)
	// MaxAmplification caps what one input decodes into: the memory the
	// decoded value takes (slices, map entries, strings, pointed-to
	// values) may exceed neither BudgetFloor nor MaxAmplification times
	// the size of the input (default 10).
	MaxAmplification int
}

// WithDefaults returns l with its zero (or negative) fields set to the
// defaults documented on them.
func (l Limits) WithDefaults() Limits {
	if l.MaxNesting <= 0 {
		l.MaxNesting = 32
	}
	if l.MaxArrayElements <= 0 {
		l.MaxArrayElements = 1 << 20
	}
	if l.MaxMapPairs <= 0 {
		l.MaxMapPairs = 1 << 20
	}
	if l.MaxAmplification <= 0 {
		l.MaxAmplification = DefaultAmplification
	}
	return l
}

// BudgetFloor is what any input may decode into, however small: the
// decode budget of an input of n bytes is BudgetFloor + MaxAmplification×n.
const BudgetFloor = 64 << 10

// Budget returns the decode budget of an input of size bytes under l.
func (l Limits) Budget(size int) int {
	f := l.MaxAmplification
	if f <= 0 {
		f = DefaultAmplification
	}
	return BudgetFloor + f*size
}

// DefaultAmplification is the default of Limits.MaxAmplification: a
// message of small integers decodes into 8 times its size ([]int64), of
// one-byte strings into 8.5 times ([]string), of empty strings into 16.
const DefaultAmplification = 10

// ErrBudget reports input that would decode into more memory than its
// decode budget (see Limits.MaxAmplification). It is refused at the first
// item that exceeds it, before that item is allocated.
var ErrBudget = errors.New("cbor: the input decodes into more than its budget")

// A BudgetError reports input refused by the decode budget; errors.Is(err,
// ErrBudget) holds.
type BudgetError struct {
	Offset int // where decoding stopped
	Size   int // of the input
	Budget int // bytes the input could decode into
	Need   int // bytes decoded so far, with the item refused
}

// Error says where the message went over its budget, and by how much.
func (e *BudgetError) Error() string {
	return fmt.Sprintf("cbor: at byte %d: a message of %d bytes decodes into more than its budget of %d bytes (%d so far): refused before decoding it all",
		e.Offset, e.Size, e.Budget, e.Need)
}

// Is makes errors.Is(err, ErrBudget) hold.
func (e *BudgetError) Is(target error) bool { return target == ErrBudget }

// A SyntaxError reports input that is not the encoding of the value
// expected, with the offset where decoding stopped.
type SyntaxError struct {
	Offset int
	Msg    string
}

// Error says where the input was malformed and how.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("cbor: at byte %d: %s", e.Offset, e.Msg)
}

// ErrNotExact reports valid input that is not in the exact form a Decoder
// reads, which the reflective decoder may still accept: a map key that is
// not a field's exact name (the reflective decoder also matches names
// case-insensitively and refuses repeated unknown keys), or a tag. The
// runtime then decodes the message with the reflective decoder.
var ErrNotExact = errors.New("cbor: input not in the exact form of the generated decoder")

// A Decoder reads one CBOR item, the encoding of a generated wire struct,
// from a byte slice. Its methods read the next item as the type they name;
// each fails with a *SyntaxError when the item is something else, is
// malformed or exceeds the limits.
type Decoder struct {
	data   []byte
	off    int
	depth  int
	limits Limits
	budget int // bytes the rest of the input may still decode into
}

// Reset makes d decode data with limits l.
func (d *Decoder) Reset(data []byte, l Limits) {
	l = l.WithDefaults()
	*d = Decoder{data: data, limits: l, budget: l.Budget(len(data))}
}

// Charge counts size bytes of memory, about to be allocated for the value
// being decoded, against the input's decode budget, and fails with a
// *BudgetError when the budget is spent. The typed reads and Slice, MapOf
// and Alloc charge what they allocate; generated code calls Charge for
// what it allocates itself.
func (d *Decoder) Charge(size uint64) error {
	if size > uint64(d.budget) {
		total := d.limits.Budget(len(d.data))
		need := uint64(total-d.budget) + size
		return &BudgetError{Offset: d.off, Size: len(d.data), Budget: total, Need: int(min(need, math.MaxInt))}
	}
	d.budget -= int(size)
	return nil
}

// charge is Charge for n items of size bytes each, which leaves d.off at
// start if it fails.
func (d *Decoder) charge(n, size uint64, start int) error {
	if size != 0 && n > math.MaxUint64/size {
		n, size = math.MaxUint64, 1
	}
	end := d.off
	d.off = start // for the error's offset
	if err := d.Charge(n * size); err != nil {
		return err
	}
	d.off = end
	return nil
}

// Finish reports an error if bytes remain after the item.
func (d *Decoder) Finish() error {
	if d.off != len(d.data) {
		return d.errorf("%d bytes after the end of the value", len(d.data)-d.off)
	}
	return nil
}

func (d *Decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: d.off, Msg: fmt.Sprintf(format, args...)}
}

// kindNames name the major types for errors.
var kindNames = [8]string{"an unsigned integer", "a negative integer", "a byte string", "a text string", "an array", "a map", "a tag", "a simple value or float"}

// describe names the item at d.off for an error.
func (d *Decoder) describe() string {
	if d.off >= len(d.data) {
		return "the end of the input"
	}
	switch b := d.data[d.off]; b {
	case simpleNull:
		return "null"
	case simpleUndefined:
		return "undefined"
	case simpleFalse, simpleTrue:
		return "a boolean"
	case headFloat16, headFloat32, headFloat64:
		return "a float"
	default:
		return kindNames[b>>5]
	}
}

// mismatch reports that the next item is not what was wanted.
func (d *Decoder) mismatch(want string) error {
	if d.off < len(d.data) && d.data[d.off]&0xe0 == majorTag {
		return ErrNotExact
	}
	return d.errorf("expected %s, found %s", want, d.describe())
}

// Unknown handles a map key that is not the exact name of a field of the
// struct being decoded: it returns ErrNotExact.
func (d *Decoder) Unknown(key []byte) error { return ErrNotExact }

// head reads the head of an item of major type major: its argument. It
// fails on another major type, a reserved or indefinite length, or
// truncated input, and leaves d.off unchanged when it fails.
func (d *Decoder) head(major byte, want string) (uint64, error) {
	if d.off >= len(d.data) {
		return 0, d.errorf("expected %s, found the end of the input", want)
	}
	b := d.data[d.off]
	if b&0xe0 != major {
		return 0, d.mismatch(want)
	}
	info := b & 0x1f
	if info < 24 {
		d.off++
		return uint64(info), nil
	}
	if info > 27 {
		return 0, d.errorf("%s with a reserved or indefinite length (%#x)", want, b)
	}
	size := 1 << (info - 24)
	if len(d.data)-d.off-1 < size {
		return 0, d.errorf("truncated %s", want)
	}
	p := d.data[d.off+1 : d.off+1+size]
	var n uint64
	switch size {
	case 1:
		n = uint64(p[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(p))
	case 4:
		n = uint64(binary.BigEndian.Uint32(p))
	default:
		n = binary.BigEndian.Uint64(p)
	}
	d.off += 1 + size
	return n, nil
}

// Nil reports whether the next item is null or undefined, and consumes it
// if so: a nil pointer, slice or map, or a zero value of any other type,
// as the reflective decoder reads it.
func (d *Decoder) Nil() bool {
	if d.off < len(d.data) && (d.data[d.off] == simpleNull || d.data[d.off] == simpleUndefined) {
		d.off++
		return true
	}
	return false
}

// readUint reads an unsigned integer that fits in bits bits.
func (d *Decoder) readUint(bits int) (uint64, error) {
	start := d.off
	n, err := d.head(majorUint, "an unsigned integer")
	if err != nil {
		return 0, err
	}
	if bits < 64 && n>>bits != 0 {
		d.off = start
		return 0, d.errorf("integer %d overflows a %d-bit unsigned integer", n, bits)
	}
	return n, nil
}

// readInt reads an integer that fits in a signed integer of bits bits.
func (d *Decoder) readInt(bits int) (int64, error) {
	start := d.off
	if d.off < len(d.data) && d.data[d.off]&0xe0 == majorNegint {
		n, err := d.head(majorNegint, "an integer")
		if err != nil {
			return 0, err
		}
		if n > uint64(1)<<(bits-1)-1 {
			d.off = start
			return 0, d.errorf("integer -1-%d overflows a %d-bit integer", n, bits)
		}
		return -1 - int64(n), nil
	}
	n, err := d.head(majorUint, "an integer")
	if err != nil {
		return 0, err
	}
	if n > uint64(1)<<(bits-1)-1 {
		d.off = start
		return 0, d.errorf("integer %d overflows a %d-bit integer", n, bits)
	}
	return int64(n), nil
}

// readBool reads a boolean.
func (d *Decoder) readBool() (bool, error) {
	if d.off < len(d.data) {
		switch d.data[d.off] {
		case simpleFalse:
			d.off++
			return false, nil
		case simpleTrue:
			d.off++
			return true, nil
		}
	}
	return false, d.mismatch("a boolean")
}

// readFloat reads a float of any precision into a float of bits bits (32
// or 64); a value beyond the range of a float32 is refused.
func (d *Decoder) readFloat(bits int) (float64, error) {
	if d.off >= len(d.data) {
		return 0, d.mismatch("a float")
	}
	var v float64
	p := d.data[d.off+1:]
	switch d.data[d.off] {
	case headFloat16:
		if len(p) < 2 {
			return 0, d.errorf("truncated float")
		}
		v = float64(float16.Frombits(binary.BigEndian.Uint16(p)).Float32())
		d.off += 3
	case headFloat32:
		if len(p) < 4 {
			return 0, d.errorf("truncated float")
		}
		v = float64(math.Float32frombits(binary.BigEndian.Uint32(p)))
		d.off += 5
	case headFloat64:
		if len(p) < 8 {
			return 0, d.errorf("truncated float")
		}
		v = math.Float64frombits(binary.BigEndian.Uint64(p))
		if bits == 32 && !math.IsInf(v, 0) && !math.IsNaN(v) && math.Abs(v) > math.MaxFloat32 {
			return 0, d.errorf("float %g overflows a float32", v)
		}
		d.off += 9
	default:
		return 0, d.mismatch("a float")
	}
	return v, nil
}

// length reads the head of a string of major type major and checks that
// its bytes are in the input.
func (d *Decoder) length(major byte, want string) ([]byte, error) {
	start := d.off
	n, err := d.head(major, want)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.data)-d.off) {
		d.off = start
		return nil, d.errorf("%s of %d bytes, beyond the end of the input", want, n)
	}
	b := d.data[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// str reads a string of major type major that the caller copies: its
// bytes are charged to the budget.
func (d *Decoder) str(major byte, want string) ([]byte, error) {
	start := d.off
	b, err := d.length(major, want)
	if err == nil {
		err = d.charge(uint64(len(b)), 1, start)
	}
	return b, err
}

// Key reads a text string, such as a map key, without copying it: the
// slice is valid as long as the input is.
func (d *Decoder) Key() ([]byte, error) { return d.length(majorText, "a text string") }

// Sizes charged by the methods that do not know the size of what the
// caller allocates (generated code of earlier versions calls them).
const (
	defaultElemSize  = 8  // Array: an element of a slice
	defaultEntrySize = 32 // Map: an entry of a map
)

// Array reads the head of an array and enters it: its n items follow, then
// the caller calls Leave. n is within the limits and the input (each item
// takes at least a byte), so that the caller may allocate n items; 8 bytes
// per item are charged to the budget. Generated code calls Slice instead.
func (d *Decoder) Array() (int, error) {
	return d.Slice(defaultElemSize)
}

// Slice is Array for an array decoded into a slice whose elements take
// size bytes each: n×size bytes are charged to the budget.
func (d *Decoder) Slice(size uintptr) (int, error) {
	start := d.off
	n, err := d.enter(majorArray, "an array", d.limits.MaxArrayElements, 1)
	if err == nil {
		if err = d.charge(uint64(n), uint64(size), start); err != nil {
			d.depth--
		}
	}
	return n, err
}

// Map reads the head of a map and enters it: its n key-value pairs follow,
// then the caller calls Leave; 32 bytes per pair are charged to the
// budget. Generated code calls MapOf instead.
func (d *Decoder) Map() (int, error) {
	start := d.off
	n, err := d.enter(majorMap, "a map", d.limits.MaxMapPairs, 2)
	if err == nil {
		if err = d.charge(uint64(n), defaultEntrySize, start); err != nil {
			d.depth--
		}
	}
	return n, err
}

// MapOf is Map for a map decoded into a Go map whose keys and values take
// keySize and valueSize bytes: what a map of n such entries takes is
// charged to the budget (see MapEntrySize).
func (d *Decoder) MapOf(keySize, valueSize uintptr) (int, error) {
	start := d.off
	n, err := d.enter(majorMap, "a map", d.limits.MaxMapPairs, 2)
	if err == nil {
		if err = d.charge(uint64(n), MapEntrySize(keySize, valueSize), start); err != nil {
			d.depth--
		}
	}
	return n, err
}

// MapEntrySize estimates what one entry of a Go map with keys and values
// of the given sizes takes: its slot, its control byte, and the room the
// map keeps free (a load factor of 7/8).
func MapEntrySize(keySize, valueSize uintptr) uint64 {
	return (uint64(keySize)+uint64(valueSize)+1)*8/7 + 1
}

// Alloc charges size bytes, the value a pointer being decoded points to,
// to the budget.
func (d *Decoder) Alloc(size uintptr) error {
	return d.charge(1, uint64(size), d.off)
}

func (d *Decoder) enter(major byte, want string, limit, minSize int) (int, error) {
	start := d.off
	n, err := d.head(major, want)
	if err != nil {
		return 0, err
	}
	switch {
	case d.depth >= d.limits.MaxNesting:
		d.off = start
		return 0, d.errorf("%s nested deeper than %d levels", want, d.limits.MaxNesting)
	case n > uint64(limit):
		d.off = start
		return 0, d.errorf("%s of %d items exceeds the limit of %d", want, n, limit)
	case n > uint64(len(d.data)-d.off)/uint64(minSize):
		d.off = start
		return 0, d.errorf("%s of %d items, beyond the end of the input", want, n)
	}
	d.depth++
	return int(n), nil
}

// Leave ends the array or map entered last.
func (d *Decoder) Leave() { d.depth-- }

// ArrayOf reads the head of an array that must have exactly n items, such
// as a struct encoded as an array, and enters it.
func (d *Decoder) ArrayOf(n int, what string) error {
	start := d.off
	got, err := d.enter(majorArray, "an array", d.limits.MaxArrayElements, 1)
	if err != nil {
		return err
	}
	if got != n {
		d.Leave()
		d.off = start
		return d.errorf("%s: an array of %d items, want %d", what, got, n)
	}
	return nil
}

// DuplicateKey returns the error for a map key seen twice.
func (d *Decoder) DuplicateKey(key any) error {
	return d.errorf("duplicate map key %v", key)
}
