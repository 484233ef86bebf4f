package aptindex

import (
	"bytes"
	"errors"
	"io"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// maxRelease bounds the size of a Release or InRelease file read into memory
// (Debian's bookworm InRelease is 150 KiB; sid's is under 1 MiB).
const maxRelease = 64 << 20

var (
	errReleaseTooBig = errors.New("aptindex: Release larger than 64 MiB")
	errBadClearsign  = errors.New("aptindex: InRelease has no complete clearsigned body")
)

// release is the parsed content of one Release or InRelease file.
type release struct {
	slot string // "<dir>/Release", whether it came from Release or InRelease
	src  string
	dir  string // the directory its names are relative to, e.g. "/dists/bookworm"
	seq  uint64

	byHash bool // Acquire-By-Hash: yes
	names  []string
	sets   []digest.Set
	byName map[string]int32
	// byDigest maps a hash type byte followed by the raw hash to every entry
	// with that hash (empty files, identical Contents of several
	// architectures, ... share one).
	byDigest map[string][]int32
}

var (
	pgpSigned    = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
	pgpSignature = []byte("-----BEGIN PGP SIGNATURE-----")
)

// clearsignedBody extracts the signed text of a clearsigned message (RFC 4880
// §7): after the armor header lines ("Hash: ...") and the blank line that ends
// them, up to the signature, with dash-escaping ("- ") undone. A message that is
// not clearsigned is returned as is. Signatures are apt's business.
func clearsignedBody(msg []byte) ([]byte, error) {
	t := bytes.TrimLeft(msg, " \t\r\n")
	if !bytes.HasPrefix(t, pgpSigned) {
		return msg, nil
	}
	_, rest := nextLine(t)
	for { // armor headers up to the first empty line
		if len(rest) == 0 {
			return nil, errBadClearsign
		}
		var line []byte
		line, rest = nextLine(rest)
		if len(trimSpace(line)) == 0 {
			break
		}
	}
	var out []byte
	for {
		if len(rest) == 0 {
			return nil, errBadClearsign // no signature: truncated
		}
		var line []byte
		line, rest = nextLine(rest)
		if bytes.HasPrefix(line, pgpSignature) {
			return out, nil
		}
		line = bytes.TrimPrefix(line, []byte("- "))
		out = append(out, line...)
		out = append(out, '\n')
	}
}

// parseRelease reads a Release or InRelease file whose names are relative to dir.
func parseRelease(r io.Reader, dir string) (*release, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxRelease+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRelease {
		return nil, errReleaseTooBig
	}
	body, err := clearsignedBody(raw)
	if err != nil {
		return nil, err
	}
	rel := &release{dir: dir, byName: map[string]int32{}, byDigest: map[string][]int32{}}
	cur, seen := -1, false
	for rest := body; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if cur >= 0 {
				rel.addLine(line, cur)
			}
			continue
		}
		name, value, ok := field(line)
		if !ok {
			cur = -1
			if seen && len(trimSpace(line)) == 0 {
				// A Release has one paragraph; anything after a blank line
				// is not part of it.
				break
			}
			continue
		}
		cur, seen = -1, true
		if is(name, "MD5Sum") || is(name, "SHA1") || is(name, "SHA256") || is(name, "SHA512") {
			cur = hashField(name)
		}
		if is(name, "Acquire-By-Hash") && is(value, "yes") {
			rel.byHash = true
		}
	}
	for i := range rel.sets {
		s := &rel.sets[i]
		for t := range 4 {
			if h := s.Get(digest.Type(t)); h != nil {
				k := string(append([]byte{byte(t)}, h...))
				rel.byDigest[k] = append(rel.byDigest[k], int32(i))
			}
		}
	}
	return rel, nil
}

// addLine records one " hash size name" line of hash section t.
func (rel *release) addLine(line []byte, t int) {
	hx, rest := nextWord(line)
	sz, rest := nextWord(rest)
	name, _ := nextWord(rest)
	if len(name) == 0 || len(name) > maxNameLen {
		return
	}
	var h [64]byte
	if !decodeHex(h[:], hx, t) {
		return
	}
	i, ok := rel.byName[string(name)]
	if !ok {
		i = int32(len(rel.sets))
		n := string(name)
		rel.names = append(rel.names, n)
		rel.sets = append(rel.sets, digest.Set{Size: parseSize(sz)})
		rel.byName[n] = i
	}
	_ = rel.sets[i].Put(digest.Type(t), h[:hashLens[t]])
}

// lookupDigest finds the entry whose hash of type t is h and whose name lies
// in the directory relDir (relative to the Release's directory; "" for the
// Release's own directory).
func (rel *release) lookupDigest(t uint8, h []byte, relDir string) (int32, bool) {
	var kb [65]byte
	kb[0] = t
	n := copy(kb[1:], h)
	for _, i := range rel.byDigest[string(kb[:1+n])] {
		if dirName(rel.names[i]) == relDir {
			return i, true
		}
	}
	return 0, false
}

func (rel *release) bytes() int64 {
	n := int64(256)
	for _, nm := range rel.names {
		n += int64(len(nm))*2 + 16 + 48 // name (held by names and byName), map overhead
	}
	n += int64(len(rel.sets)) * int64(160)
	for k, v := range rel.byDigest {
		n += int64(len(k)) + 16 + 24 + int64(cap(v))*4 + 16
	}
	return n
}
