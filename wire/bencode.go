package wire

import (
	"bytes"
	"errors"
	"math/big"
	"slices"
	"strconv"
)

// Limits that protect the decoders against hostile input. A KRPC packet
// needs a nesting depth of 4 (envelope, argument dict, list, string); stored
// values need 3.
const (
	// MaxDepth is the deepest nesting of lists and dicts either decoder accepts.
	MaxDepth = 32
	// MaxParseLen is the largest datagram (*Msg).Parse looks at: a UDP payload
	// never exceeds it.
	MaxParseLen = 65535
	// MaxDecodeLen is the largest input Decode accepts: 4 MiB holds the piece
	// string of a file of about 100 GiB at 512 KiB pieces.
	MaxDecodeLen = 4 << 20
	// MaxDecodeItems caps the number of values Decode builds, so a small input
	// such as "llllll…" cannot make it allocate without bound.
	MaxDecodeItems = 1 << 16
)

// Errors of the strict bencode decoders and the general encoder.
var (
	ErrSyntax    = errors.New("wire: invalid bencode")
	ErrTruncated = errors.New("wire: truncated bencode")
	ErrTrailing  = errors.New("wire: trailing data after bencode value")
	ErrKeyOrder  = errors.New("wire: dict keys not strictly increasing")
	ErrDepth     = errors.New("wire: bencode nested too deeply")
	ErrTooLarge  = errors.New("wire: bencode input too large")
	ErrKeyType   = errors.New("wire: dict key is not a string")
	ErrEncode    = errors.New("wire: value cannot be bencoded")
)

// readStr reads a string at b[i:] ("<len>:<bytes>") and returns it capped, so
// an append through it cannot overwrite the next field.
func readStr(b []byte, i int) ([]byte, int, error) {
	// Fast paths for one- and two-digit lengths: every KRPC key, ID and node.
	if i+2 < len(b) {
		c0, c1 := b[i]-'0', b[i+1]
		var n, j int
		switch {
		case c0 <= 9 && c1 == ':':
			n, j = int(c0), i+2
		case c0-1 <= 8 && c1-'0' <= 9 && b[i+2] == ':':
			n, j = int(c0)*10+int(c1-'0'), i+3
		default:
			return readStrSlow(b, i)
		}
		if n > len(b)-j {
			return nil, i, ErrTruncated
		}
		return b[j : j+n : j+n], j + n, nil
	}
	return readStrSlow(b, i)
}

func readStrSlow(b []byte, i int) ([]byte, int, error) {
	if i >= len(b) {
		return nil, i, ErrTruncated
	}
	c := b[i]
	if c < '0' || c > '9' {
		return nil, i, ErrSyntax
	}
	n := int(c - '0')
	j := i + 1
	if c == '0' {
		// "0:" is the empty string; "01:" has a leading zero.
		if j < len(b) && b[j] >= '0' && b[j] <= '9' {
			return nil, i, ErrSyntax
		}
	} else {
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
			n = n*10 + int(b[j]-'0')
			if n > len(b) {
				return nil, i, ErrTruncated
			}
		}
	}
	if j >= len(b) {
		return nil, i, ErrTruncated
	}
	if b[j] != ':' {
		return nil, i, ErrSyntax
	}
	j++
	if n > len(b)-j {
		return nil, i, ErrTruncated
	}
	return b[j : j+n : j+n], j + n, nil
}

// readInt reads an integer at b[i:] ("i<digits>e"). It returns the value and
// ok=true if it fits an int64; the digits are always validated, so ok=false with
// a nil error means a well-formed integer outside the int64 range.
func readInt(b []byte, i int) (v int64, ok bool, next int, err error) {
	j := i + 1 // past 'i'
	neg := false
	if j < len(b) && b[j] == '-' {
		neg = true
		j++
	}
	if j >= len(b) {
		return 0, false, i, ErrTruncated
	}
	if b[j] < '0' || b[j] > '9' {
		return 0, false, i, ErrSyntax // "ie", "i-e", "i+1e", "i e"
	}
	if b[j] == '0' {
		// Only "i0e" may start with 0: this rejects i-0e, i03e and i-05e.
		if neg || j+1 >= len(b) || b[j+1] != 'e' {
			if j+1 >= len(b) {
				return 0, false, i, ErrTruncated
			}
			return 0, false, i, ErrSyntax
		}
		return 0, true, j + 2, nil
	}
	ok = true
	var u uint64
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		d := uint64(b[j] - '0')
		if u > (1<<63)/10 || u*10 > 1<<63-d {
			ok = false
		} else {
			u = u*10 + d
		}
	}
	if j >= len(b) {
		return 0, false, i, ErrTruncated
	}
	if b[j] != 'e' {
		return 0, false, i, ErrSyntax
	}
	if !ok {
		return 0, false, j + 1, nil
	}
	if neg {
		return -int64(u), true, j + 1, nil // u ≤ 1<<63 here, so this is exact
	}
	if u > 1<<63-1 {
		return 0, false, j + 1, nil
	}
	return int64(u), true, j + 1, nil
}

// keyLess reports whether dict key a sorts strictly before b. Keys of one
// dict mostly differ in their first byte, so that is compared first.
func keyLess(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return string(a) < string(b)
}

// counts collects what skip saw, for Decode's allocation cap.
type counts struct{ items int }

// skip validates the value at b[i:] under the strict rules and returns the
// index after it. c may be nil.
func skip(b []byte, i, depth int, c *counts) (int, error) {
	if i >= len(b) {
		return i, ErrTruncated
	}
	if c != nil {
		c.items++
		if c.items > MaxDecodeItems {
			return i, ErrTooLarge
		}
	}
	switch b[i] {
	case 'i':
		_, _, j, err := readInt(b, i)
		return j, err
	case 'l':
		if depth >= MaxDepth {
			return i, ErrDepth
		}
		j := i + 1
		for {
			if j >= len(b) {
				return j, ErrTruncated
			}
			if b[j] == 'e' {
				return j + 1, nil
			}
			var err error
			if j, err = skip(b, j, depth+1, c); err != nil {
				return j, err
			}
		}
	case 'd':
		if depth >= MaxDepth {
			return i, ErrDepth
		}
		j := i + 1
		var prev []byte
		first := true
		for {
			if j >= len(b) {
				return j, ErrTruncated
			}
			if b[j] == 'e' {
				return j + 1, nil
			}
			if b[j] < '0' || b[j] > '9' {
				return j, ErrKeyType
			}
			k, next, err := readStr(b, j)
			if err != nil {
				return next, err
			}
			if !first && !keyLess(prev, k) {
				return j, ErrKeyOrder
			}
			prev, first = k, false
			if j, err = skip(b, next, depth+1, c); err != nil {
				return j, err
			}
		}
	default:
		_, j, err := readStr(b, i)
		return j, err
	}
}

// Kind is the type of a decoded bencode Value.
type Kind uint8

// The four bencode types.
const (
	KindInvalid Kind = iota
	KindInt
	KindString
	KindList
	KindDict
)

// Value is a decoded bencode value. Byte slices alias the input given to
// Decode.
type Value struct {
	Kind Kind
	Int  int64  // KindInt, when it fits in an int64
	Big  []byte // KindInt outside the int64 range: its decimal text ("-123…"); nil otherwise
	Str  []byte // KindString
	List []Value
	Dict []DictEntry // strictly increasing keys after Decode
}

// DictEntry is one key/value pair of a bencode dict.
type DictEntry struct {
	Key   []byte
	Value Value
}

// Get returns the value under key in a dict, or nil.
func (v *Value) Get(key string) *Value {
	for i := range v.Dict {
		if string(v.Dict[i].Key) == key {
			return &v.Dict[i].Value
		}
	}
	return nil
}

// Equal reports whether v and w are the same bencode value.
func (v *Value) Equal(w *Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInt:
		return v.Int == w.Int && bytes.Equal(v.Big, w.Big)
	case KindString:
		return bytes.Equal(v.Str, w.Str)
	case KindList:
		return slices.EqualFunc(v.List, w.List, func(a, b Value) bool { return a.Equal(&b) })
	case KindDict:
		return slices.EqualFunc(v.Dict, w.Dict, func(a, b DictEntry) bool {
			return bytes.Equal(a.Key, b.Key) && a.Value.Equal(&b.Value)
		})
	}
	return true
}

// Valid reports whether b is exactly one strictly encoded bencode value, under
// the same rules and limits as Decode, without building anything.
func Valid(b []byte) error {
	if len(b) > MaxDecodeLen {
		return ErrTooLarge
	}
	var c counts
	j, err := skip(b, 0, 0, &c)
	if err != nil {
		return err
	}
	if j != len(b) {
		return ErrTrailing
	}
	return nil
}

// Decode decodes exactly one strictly encoded bencode value, as the original
// apt-p2p decoder does: the whole input must be consumed; integers and string
// lengths have no leading zeros (except i0e), i-0e and ie are invalid; dict keys
// are strings in strictly increasing order. Integers of any size are accepted
// (outside int64 they are kept as text in Value.Big). The input is validated in
// full before anything is allocated.
func Decode(b []byte) (Value, error) {
	if err := Valid(b); err != nil {
		return Value{}, err
	}
	v, _ := build(b, 0)
	return v, nil
}

// build decodes a value already validated by skip.
func build(b []byte, i int) (Value, int) {
	switch b[i] {
	case 'i':
		n, ok, j, _ := readInt(b, i)
		if !ok {
			return Value{Kind: KindInt, Big: b[i+1 : j-1 : j-1]}, j
		}
		return Value{Kind: KindInt, Int: n}, j
	case 'l':
		v := Value{Kind: KindList, List: []Value{}}
		j := i + 1
		for b[j] != 'e' {
			var e Value
			e, j = build(b, j)
			v.List = append(v.List, e)
		}
		return v, j + 1
	case 'd':
		v := Value{Kind: KindDict, Dict: []DictEntry{}}
		j := i + 1
		for b[j] != 'e' {
			k, next, _ := readStr(b, j)
			var e Value
			e, j = build(b, next)
			v.Dict = append(v.Dict, DictEntry{Key: k, Value: e})
		}
		return v, j + 1
	default:
		s, j, _ := readStr(b, i)
		return Value{Kind: KindString, Str: s}, j
	}
}

// AppendValue appends the bencoding of v. Dict entries are written in sorted
// key order whatever their order in v; a duplicate key is an error.
func AppendValue(dst []byte, v *Value) ([]byte, error) {
	switch v.Kind {
	case KindInt:
		if v.Big != nil {
			var z big.Int
			if _, ok := z.SetString(string(v.Big), 10); !ok {
				return dst, ErrEncode
			}
			return appendBig(dst, &z), nil
		}
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, v.Int, 10)
		return append(dst, 'e'), nil
	case KindString:
		return appendStr(dst, v.Str), nil
	case KindList:
		dst = append(dst, 'l')
		for i := range v.List {
			var err error
			if dst, err = AppendValue(dst, &v.List[i]); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case KindDict:
		ents := v.Dict
		if !slices.IsSortedFunc(ents, cmpEntry) {
			ents = slices.Clone(ents)
			slices.SortFunc(ents, cmpEntry)
		}
		dst = append(dst, 'd')
		for i := range ents {
			if i > 0 && bytes.Equal(ents[i-1].Key, ents[i].Key) {
				return dst, ErrKeyOrder
			}
			dst = appendStr(dst, ents[i].Key)
			var err error
			if dst, err = AppendValue(dst, &ents[i].Value); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	}
	return dst, ErrEncode
}

func cmpEntry(a, b DictEntry) int { return bytes.Compare(a.Key, b.Key) }

func appendStr(dst, s []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendBig(dst []byte, z *big.Int) []byte {
	dst = append(dst, 'i')
	dst = z.Append(dst, 10)
	return append(dst, 'e')
}

// Encode bencodes a Go value as the original's encoder does: int types,
// *big.Int, bool (i1e/i0e), string, []byte, []any, map[string]any (keys
// sorted), map[any]any (every key must be a string or []byte, else ErrKeyType)
// and Value / *Value.
func Encode(dst []byte, x any) ([]byte, error) {
	switch x := x.(type) {
	case int:
		return appendInt(dst, int64(x)), nil
	case int64:
		return appendInt(dst, x), nil
	case int32:
		return appendInt(dst, int64(x)), nil
	case uint16:
		return appendInt(dst, int64(x)), nil
	case uint32:
		return appendInt(dst, int64(x)), nil
	case uint64:
		dst = append(dst, 'i')
		dst = strconv.AppendUint(dst, x, 10)
		return append(dst, 'e'), nil
	case *big.Int:
		return appendBig(dst, x), nil
	case bool:
		if x {
			return append(dst, "i1e"...), nil
		}
		return append(dst, "i0e"...), nil
	case string:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case []byte:
		return appendStr(dst, x), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			var err error
			if dst, err = Encode(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst, _ = Encode(dst, k)
			var err error
			if dst, err = Encode(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			switch k := k.(type) {
			case string:
				m[k] = v
			default:
				return dst, ErrKeyType
			}
		}
		return Encode(dst, m)
	case Value:
		return AppendValue(dst, &x)
	case *Value:
		return AppendValue(dst, x)
	}
	return dst, ErrEncode
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}
