package wire

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

// Values for building expected trees.
func vi(n int64) Value    { return Value{Kind: KindInt, Int: n} }
func vs(s string) Value   { return Value{Kind: KindString, Str: []byte(s)} }
func vl(e ...Value) Value { return Value{Kind: KindList, List: append([]Value{}, e...)} }
func vd(kv ...any) Value {
	v := Value{Kind: KindDict, Dict: []DictEntry{}}
	for i := 0; i < len(kv); i += 2 {
		v.Dict = append(v.Dict, DictEntry{Key: []byte(kv[i].(string)), Value: kv[i+1].(Value)})
	}
	return v
}

// Reference §6.1, test_bdecode_*: inputs the original rejects.
var bdecodeFail = []string{
	// test_bdecode_string
	"0:0:", "", "35208734823ljdahflajhdf", "2:abfdjslhfld", "02:xy", "9999:x",
	// test_bdecode_int
	"ie", "i341foo382e", "i-0e", "i123", "i6easd", "i03e",
	// test_bdecode_list
	"l", "leanfdldjfh", "relwjhrlewjh", "l01:ae", "l0:",
	// test_bdecode_dict
	"d", "defoobar", "d3:fooe", "di1e0:e", "d1:b0:1:a0:e", "d1:a0:1:a0:e", "d0:0:", "d0:",
	// test_bdecode_unicode: the u extension is not accepted at all.
	"u0:", "u3:abc", "u10:1234567890", "u0:0:", "u", "u35208734823ljdahflajhdf", "u2:abfdjslhfld", "u02:xy", "u9999:x",
	// More of the same rules.
	"i-05e", "i+5e", "i 5e", "i-e", "i5", "-1:a", "1a", "3", "d1:ai1e1:ai2ee", "d2:ab0:1:a0:e",
	"t2008-01-01T00:00:00e", "i00e", "00:", "l00:e",
}

func TestDecodeRejects(t *testing.T) {
	for _, in := range bdecodeFail {
		if v, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) = %+v, want an error", in, v)
		}
		if err := Valid([]byte(in)); err == nil {
			t.Errorf("Valid(%q) = nil, want an error", in)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want Value
	}{
		{"0:", vs("")},
		{"3:abc", vs("abc")},
		{"10:1234567890", vs("1234567890")},
		{"i4e", vi(4)},
		{"i0e", vi(0)},
		{"i123456789e", vi(123456789)},
		{"i-10e", vi(-10)},
		{"le", vl()},
		{"l0:0:0:e", vl(vs(""), vs(""), vs(""))},
		{"li1ei2ei3ee", vl(vi(1), vi(2), vi(3))},
		{"l3:asd2:xye", vl(vs("asd"), vs("xy"))},
		{"ll5:Alice3:Bobeli2ei3eee", vl(vl(vs("Alice"), vs("Bob")), vl(vi(2), vi(3)))},
		{"de", vd()},
		{"d3:agei25e4:eyes4:bluee", vd("age", vi(25), "eyes", vs("blue"))},
		{"d8:spam.mp3d6:author5:Alice6:lengthi100000eee", vd("spam.mp3", vd("author", vs("Alice"), "length", vi(100000)))},
		{"i9223372036854775807e", vi(1<<63 - 1)},
		{"i-9223372036854775808e", vi(-1 << 63)},
		{"i12345678901234567890e", Value{Kind: KindInt, Big: []byte("12345678901234567890")}},
		{"i-9223372036854775809e", Value{Kind: KindInt, Big: []byte("-9223372036854775809")}},
	}
	for _, tc := range tests {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(&tc.want) {
			t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		// Round trip: the strict encoding is unique.
		out, err := AppendValue(nil, &got)
		if err != nil || string(out) != tc.in {
			t.Errorf("AppendValue(Decode(%q)) = %q, %v", tc.in, out, err)
		}
	}
}

func TestEncodeVectors(t *testing.T) {
	big1, _ := new(big.Int).SetString("12345678901234567890", 10)
	tests := []struct {
		in   any
		want string
	}{
		// test_bencode_int
		{4, "i4e"}, {0, "i0e"}, {-10, "i-10e"}, {big1, "i12345678901234567890e"},
		{uint64(12345678901234567890), "i12345678901234567890e"},
		// test_bencode_string and test_bencode_unicode
		{"", "0:"}, {"abc", "3:abc"}, {"1234567890", "10:1234567890"}, {[]byte("abc"), "3:abc"},
		// test_bencode_list
		{[]any{}, "le"}, {[]any{1, 2, 3}, "li1ei2ei3ee"},
		{[]any{[]any{"Alice", "Bob"}, []any{2, 3}}, "ll5:Alice3:Bobeli2ei3eee"},
		// test_bencode_dict
		{map[string]any{}, "de"},
		{map[string]any{"eyes": "blue", "age": 25}, "d3:agei25e4:eyes4:bluee"},
		{map[string]any{"spam.mp3": map[string]any{"length": 100000, "author": "Alice"}}, "d8:spam.mp3d6:author5:Alice6:lengthi100000eee"},
		{map[any]any{"b": 1, "a": 2}, "d1:ai2e1:bi1ee"},
		// test_bool
		{true, "i1e"}, {false, "i0e"},
		// Value trees, dict entries out of order are sorted.
		{vd("b", vi(1), "a", vs("x")), "d1:a1:x1:bi1ee"},
		{Value{Kind: KindInt, Big: []byte("-99999999999999999999")}, "i-99999999999999999999e"},
	}
	for _, tc := range tests {
		got, err := Encode(nil, tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("Encode(%#v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	// test_bencode_dict: a dict with an integer key is an encode error.
	if _, err := Encode(nil, map[any]any{1: "x"}); !errors.Is(err, ErrKeyType) {
		t.Errorf("integer key: err = %v, want ErrKeyType", err)
	}
	if _, err := Encode(nil, 1.5); !errors.Is(err, ErrEncode) {
		t.Errorf("float: err = %v, want ErrEncode", err)
	}
	dup := vd("a", vi(1), "a", vi(2))
	if _, err := AppendValue(nil, &dup); !errors.Is(err, ErrKeyOrder) {
		t.Errorf("duplicate key: err = %v, want ErrKeyOrder", err)
	}
	badBig := Value{Kind: KindInt, Big: []byte("12x")}
	if _, err := AppendValue(nil, &badBig); !errors.Is(err, ErrEncode) {
		t.Errorf("bad big int: err = %v, want ErrEncode", err)
	}
}

func TestDecodeLimits(t *testing.T) {
	deep := strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth)
	if _, err := Decode([]byte(deep)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	tooDeep := strings.Repeat("l", MaxDepth+1) + strings.Repeat("e", MaxDepth+1)
	if _, err := Decode([]byte(tooDeep)); !errors.Is(err, ErrDepth) {
		t.Errorf("depth %d: err = %v, want ErrDepth", MaxDepth+1, err)
	}
	many := "l" + strings.Repeat("i0e", MaxDecodeItems) + "e"
	if _, err := Decode([]byte(many)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d items: err = %v, want ErrTooLarge", MaxDecodeItems+1, err)
	}
	big := make([]byte, MaxDecodeLen+1)
	if _, err := Decode(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d bytes: err = %v, want ErrTooLarge", len(big), err)
	}
	// A declared length far beyond the data, and one that overflows int.
	for _, in := range []string{"99999999999999999999999:x", "4294967296:x"} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrTruncated) {
			t.Errorf("Decode(%q): err = %v, want ErrTruncated", in, err)
		}
	}
}
