package kbucket

// Data-driven routing-table scenarios: testdata/*.txt hold commands, each
// followed by a "----" line and the expected output up to the next blank
// line (pebble's datadriven style, hand-written here to need no module).
// `go test ./kbucket -run TestDataDriven -rewrite` rewrites the expected
// outputs from what the table does; review every difference before
// committing a rewrite.
//
// Commands (IDs in the short form: hex prefix, or prefix..suffix with zeros
// between, e.g. "c0..01"; the clock starts at 0 and advances by one second
// before each command that takes a time, unless t=<seconds> is given):
//
//	self <id> [k=<n>] [maxfail=<n>] [local]   new table
//	insert <id> <ip:port> contacted|uncontacted [t=<s>]
//	fail <id>        remove <id>        get <id>
//	closest <target> <k> [except=<id>]
//	touch <id> [t=<s>]
//	stale <seconds> [t=<s>] [rnd=<hex byte>]  random IDs of stale buckets, rnd bytes all equal
//	table            buckets in range order with their nodes, oldest first
//	addr <ip>|<ip:port> [local]               AddrAllowed / AddrPortAllowed

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of kbucket/testdata scenarios")

// parseShortID reads an ID in the short form (see the file comment).
func parseShortID(s string) (wire.ID, error) {
	prefix, suffix, found := strings.Cut(s, "..")
	if !found {
		prefix = s
	}
	if len(prefix)+len(suffix) > 2*wire.IDLen {
		return wire.ID{}, fmt.Errorf("ID %q longer than 40 hex digits", s)
	}
	h := prefix + strings.Repeat("0", 2*wire.IDLen-len(prefix)-len(suffix)) + suffix
	var id wire.ID
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return wire.ID{}, fmt.Errorf("ID %q: %w", s, err)
	}
	return id, nil
}

// shortID writes id with its longest run of zero digits (3 or more)
// replaced by "..".
func shortID(id wire.ID) string {
	h := id.String()
	best, bestLen := 0, 0
	for i := 0; i < len(h); {
		j := i
		for j < len(h) && h[j] == '0' {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
		}
		if j == i {
			j++
		}
		i = j
	}
	if bestLen < 3 {
		return h
	}
	if bestLen == len(h) {
		return "0.."
	}
	return h[:best] + ".." + h[best+bestLen:]
}

func TestShortIDRoundTrip(t *testing.T) {
	r := newRand(20)
	for i := range 2000 {
		id := randID(r)
		for j := range id { // many zero runs
			if r.IntN(3) == 0 || (i%4 == 0 && j > 3) {
				id[j] = 0
			}
		}
		s := shortID(id)
		if got, err := parseShortID(s); err != nil || got != id {
			t.Fatalf("%s → %q → %s, %v", id, s, got, err)
		}
	}
	for s, want := range map[string]string{
		"c0..01": "c000000000000000000000000000000000000001",
		"8":      "8000000000000000000000000000000000000000",
		"..1":    "0000000000000000000000000000000000000001",
		"0..":    "0000000000000000000000000000000000000000",
	} {
		if got := mustID(t, s); got.String() != want {
			t.Errorf("parse %q = %s, want %s", s, got, want)
		}
	}
	if _, err := parseShortID("xyz"); err == nil {
		t.Error("parse of non-hex succeeded")
	}
}

type ddCase struct {
	pre      []string // comments and blank lines before the command
	cmd      string
	line     int
	expected string
	blank    bool // the output ended with a blank line (not EOF)
}

func parseScenario(t *testing.T, path string) (cases []ddCase, trailer []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var pre []string
	ln := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		ln++
		return sc.Text(), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if l == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		c := ddCase{pre: pre, cmd: l, line: ln}
		pre = nil
		if sep, ok := next(); !ok || sep != "----" {
			t.Fatalf("%s:%d: command %q not followed by ----", path, ln, l)
		}
		var out []string
		for {
			o, ok := next()
			if !ok {
				break
			}
			if o == "" {
				c.blank = true
				break
			}
			out = append(out, o)
		}
		c.expected = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases, pre
}

func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			cases, trailer := parseScenario(t, path)
			var sb strings.Builder
			st := &ddState{}
			for _, c := range cases {
				got := st.run(t, c.cmd)
				if st.tb != nil {
					if err := invariantError(st.tb); err != nil {
						t.Errorf("%s:%d: %s: invariant broken: %v", path, c.line, c.cmd, err)
					}
				}
				if got != c.expected && !*rewrite {
					t.Errorf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", path, c.line, c.cmd, got, c.expected)
				}
				for _, p := range c.pre {
					sb.WriteString(p + "\n")
				}
				sb.WriteString(c.cmd + "\n----\n" + got + "\n")
				if c.blank {
					sb.WriteString("\n")
				}
			}
			for _, p := range trailer {
				sb.WriteString(p + "\n")
			}
			if *rewrite {
				if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type ddState struct {
	tb  *Table
	now int
}

func (st *ddState) clock(args map[string]string) time.Time {
	if v, ok := args["t"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			panic(err)
		}
		st.now = n
	} else {
		st.now++
	}
	return at(st.now)
}

func secs(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return strconv.Itoa(int(t.Sub(epoch) / time.Second))
}

func fmtNode(n Node) string {
	s := fmt.Sprintf("%s %s seen=%s", shortID(n.ID), n.Addr, secs(n.LastSeen))
	if n.Fails > 0 {
		s += fmt.Sprintf(" fails=%d", n.Fails)
	}
	return s
}

func (st *ddState) run(t *testing.T, line string) (out string) {
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("error: %v", r)
		}
	}()
	fields := strings.Fields(line)
	// Positional arguments first, then key=value options and flags.
	var pos []string
	args := map[string]string{}
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		} else if f == "local" {
			args[f] = ""
		} else {
			pos = append(pos, f)
		}
	}
	id := func(i int) wire.ID {
		if i >= len(pos) {
			panic(errors.New("missing argument"))
		}
		v, err := parseShortID(pos[i])
		if err != nil {
			panic(err)
		}
		return v
	}
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			panic(err)
		}
		return n
	}
	_, local := args["local"]
	if fields[0] != "self" && fields[0] != "addr" && st.tb == nil {
		panic(errors.New("no table: start with self"))
	}
	switch fields[0] {
	case "self":
		cfg := Config{AllowLocal: local}
		if v, ok := args["k"]; ok {
			cfg.K = num(v)
		}
		if v, ok := args["maxfail"]; ok {
			cfg.MaxFailures = num(v)
		}
		st.tb, st.now = New(id(0), cfg), 0
		return "ok"
	case "insert":
		ap, err := netip.ParseAddrPort(pos[1])
		if err != nil {
			panic(err)
		}
		if pos[2] != "contacted" && pos[2] != "uncontacted" {
			panic(fmt.Errorf("want contacted or uncontacted, got %q", pos[2]))
		}
		res, old := st.tb.Insert(Node{ID: id(0), Addr: ap}, pos[2] == "contacted", st.clock(args))
		if res == BucketFull {
			return fmt.Sprintf("%v oldest=%s", res, fmtNode(old))
		}
		return res.String()
	case "fail":
		if _, ok := st.tb.Get(id(0)); !ok {
			return "unknown"
		}
		if st.tb.Failed(id(0)) {
			return "removed"
		}
		n, _ := st.tb.Get(id(0))
		return fmt.Sprintf("fails=%d", n.Fails)
	case "remove":
		if st.tb.Remove(id(0)) {
			return "removed"
		}
		return "unknown"
	case "get":
		if n, ok := st.tb.Get(id(0)); ok {
			return fmtNode(n)
		}
		return "not found"
	case "closest":
		target, k := id(0), num(pos[1])
		var got, want []Node
		if v, ok := args["except"]; ok {
			ex, err := parseShortID(v)
			if err != nil {
				panic(err)
			}
			got = st.tb.ClosestExcluding(nil, target, k, ex)
			want = bruteClosest(st.tb, target, k, func(n Node) bool { return n.ID != ex && n.Fails == 0 })
		} else {
			got = st.tb.Closest(nil, target, k)
			want = bruteClosest(st.tb, target, k, nil)
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("closest %s %d disagrees with brute force: %v vs %v", shortID(target), k, ids(got), ids(want))
		}
		if len(got) == 0 {
			return "none"
		}
		var lines []string
		for _, n := range got {
			lines = append(lines, fmt.Sprintf("%s d=%s", shortID(n.ID), shortID(n.ID.Xor(target))))
		}
		return strings.Join(lines, "\n")
	case "touch":
		st.tb.Touch(id(0), st.clock(args))
		return "ok"
	case "stale":
		staleness := time.Duration(num(pos[0])) * time.Second
		now := at(st.now)
		if v, ok := args["t"]; ok {
			st.now = num(v)
			now = at(st.now)
		}
		fill := byte(0x55)
		if v, ok := args["rnd"]; ok {
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != 1 {
				panic(fmt.Errorf("rnd wants one hex byte, got %q", v))
			}
			fill = b[0]
		}
		got := st.tb.StaleBuckets(nil, now, staleness, func(b []byte) {
			for i := range b {
				b[i] = fill
			}
		})
		if len(got) == 0 {
			return "none"
		}
		var lines []string
		for _, g := range got {
			lines = append(lines, shortID(g))
		}
		return strings.Join(lines, "\n")
	case "table":
		var lines []string
		var order [MaxBuckets]uint8
		for i, bi := range st.tb.rangeOrder(&order) {
			info := st.tb.Buckets(nil)[i]
			end := "2^160"
			if e := fromID(info.Min).add(spanOfPrefix(info.PrefixLen)); e != spanOfPrefix(0) {
				end = shortID(e.toID())
			}
			l := fmt.Sprintf("[%s, %s) n=%d accessed=%s", shortID(info.Min), end, info.Len, secs(info.LastAccessed))
			if info.HoldsSelf {
				l += " self"
			}
			lines = append(lines, l)
			for _, n := range st.tb.buckets[bi].nodes {
				lines = append(lines, "  "+fmtNode(n))
			}
		}
		return strings.Join(lines, "\n")
	case "addr":
		if ap, err := netip.ParseAddrPort(pos[0]); err == nil {
			if AddrPortAllowed(ap, local) {
				return "allowed"
			}
			return "refused"
		}
		a, err := netip.ParseAddr(pos[0])
		if err != nil {
			panic(err)
		}
		if AddrAllowed(a, local) {
			return "allowed"
		}
		return "refused"
	}
	panic(fmt.Errorf("unknown command %q", fields[0]))
}
