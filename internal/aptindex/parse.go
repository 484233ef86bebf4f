package aptindex

import (
	"bytes"
	"errors"
	"io"
)

var (
	errTooBig     = errors.New("aptindex: index too large")
	errLongStanza = errors.New("aptindex: stanza longer than 16 MiB")
)

// chunkReader cuts a deb822 stream (RFC 822-like fields, continuation lines
// starting with a space or tab, paragraphs separated by empty or
// whitespace-only lines) into chunks of whole paragraphs without copying
// them: a chunk ends at an empty line, so no paragraph spans two chunks, and
// aliases an internal buffer until the next call. Finding one cut per buffer
// instead of scanning every line twice is what keeps parsing near memory speed.
type chunkReader struct {
	r     io.Reader
	buf   []byte
	start int // unconsumed data is buf[start:end]
	end   int
	eof   bool
}

func newChunkReader(r io.Reader) *chunkReader {
	return &chunkReader{r: r, buf: make([]byte, 256<<10)}
}

// fill reads more data, moving the unconsumed part to the front and growing the
// buffer if it is full (a paragraph longer than the buffer).
func (c *chunkReader) fill() error {
	if c.start > 0 {
		n := copy(c.buf, c.buf[c.start:c.end])
		c.start, c.end = 0, n
	}
	if c.end == len(c.buf) {
		if len(c.buf) >= maxStanza {
			return errLongStanza
		}
		nb := make([]byte, 2*len(c.buf))
		copy(nb, c.buf[:c.end])
		c.buf = nb
	}
	for c.end < len(c.buf) {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	return nil
}

// next returns the next chunk of whole paragraphs, or nil at the end.
func (c *chunkReader) next() ([]byte, error) {
	for {
		data := c.buf[c.start:c.end]
		if c.eof {
			c.start = c.end
			if len(data) == 0 {
				return nil, nil
			}
			return data, nil
		}
		if i := bytes.LastIndex(data, []byte("\n\n")); i >= 0 {
			c.start += i + 2
			return data[:i+1], nil
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// nextLine splits the first line off p (without its newline or a trailing \r).
func nextLine(p []byte) (line, rest []byte) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		line, rest = p, nil
	} else {
		line, rest = p[:i], p[i+1:]
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// field splits "Name: value" into name and trimmed value; ok is false for a
// continuation line or a line without a colon.
func field(line []byte) (name, value []byte, ok bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return nil, nil, false
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	return line[:i], trimSpace(line[i+1:]), true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// nextWord splits the first space-separated word off b.
func nextWord(b []byte) (w, rest []byte) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	return b[:i], b[i:]
}

// is compares a field name with an ASCII name, ignoring case (deb822 field
// names are case-insensitive: Packages says "MD5sum", Release "MD5Sum").
func is(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

// hashField maps a Packages or Release hash field name to a digest type index.
func hashField(name []byte) int {
	switch len(name) {
	case 4:
		if is(name, "SHA1") {
			return 1
		}
	case 6:
		if is(name, "MD5sum") {
			return 0
		}
		if is(name, "SHA256") {
			return 2
		}
		if is(name, "SHA512") {
			return 3
		}
	}
	return -1
}

// sourcesHashField maps a Sources checksum list field to a digest type index.
func sourcesHashField(name []byte) int {
	switch {
	case is(name, "Files"):
		return 0
	case is(name, "Checksums-Sha1"):
		return 1
	case is(name, "Checksums-Sha256"):
		return 2
	case is(name, "Checksums-Sha512"):
		return 3
	}
	return -1
}

var unhex = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
		t[c-'a'+'A'] = uint8(c - 'a' + 10)
	}
	return t
}()

// decodeHex decodes a hash of type t into dst; false if it is not exactly
// that many hex digits.
func decodeHex[T string | []byte](dst []byte, hx T, t int) bool {
	n := hashLens[t]
	if len(hx) != 2*n {
		return false
	}
	for i := range n {
		a, b := unhex[hx[2*i]], unhex[hx[2*i+1]]
		if a > 15 || b > 15 {
			return false
		}
		dst[i] = a<<4 | b
	}
	return true
}

// parseSize parses a non-negative decimal size; -1 if it is not one.
func parseSize(b []byte) int64 {
	if len(b) == 0 || len(b) > 18 {
		return -1
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// parsePackages reads a Packages stream: Filename, Size and the hash fields of
// every paragraph. Paragraphs without Filename (a Translation file read by
// mistake, say) contribute nothing.
func parsePackages(r io.Reader, b *builder) error {
	cr := newChunkReader(r)
	var hashes [4][64]byte
	var filename []byte
	size := int64(-1)
	var have uint8
	flush := func() {
		if filename != nil {
			b.add(nil, bytes.TrimPrefix(filename, []byte("./")), size, have, &hashes)
		}
		filename, size, have = nil, -1, 0
	}
	for {
		chunk, err := cr.next()
		if err != nil {
			return err
		}
		if chunk == nil {
			return b.err
		}
		for rest := chunk; len(rest) > 0; {
			var line []byte
			line, rest = nextLine(rest)
			if len(line) == 0 || isBlank(line) {
				flush()
				continue
			}
			// Only Filename, Size, MD5sum and SHA* matter: skip the
			// other fields and continuation lines without looking for
			// a colon.
			switch line[0] | 0x20 {
			case 'f', 's', 'm':
			default:
				continue
			}
			name, value, ok := field(line)
			if !ok {
				continue
			}
			switch {
			case is(name, "Filename"):
				filename = value
			case is(name, "Size"):
				size = parseSize(value)
			default:
				if t := hashField(name); t >= 0 && decodeHex(hashes[t][:], value, t) {
					have |= 1 << t
				}
			}
		}
		flush() // a chunk ends with a paragraph
		if b.err != nil {
			return b.err
		}
	}
}

// srcFile is one file of a Sources paragraph while the paragraph is read:
// Directory may come after the checksum lists.
type srcFile struct {
	name   []byte
	size   int64
	have   uint8
	hashes [4][64]byte
}

// parseSources reads a Sources stream: Directory and the files of the Files
// (MD5), Checksums-Sha1, Checksums-Sha256 and Checksums-Sha512 lists.
func parseSources(r io.Reader, b *builder) error {
	cr := newChunkReader(r)
	var files []srcFile // reused across paragraphs
	var dir []byte
	cur := -1 // checksum list being read, or -1
	flush := func() {
		for i := range files {
			f := &files[i]
			b.add(dir, f.name, f.size, f.have, &f.hashes)
		}
		files, dir, cur = files[:0], nil, -1
	}
	for {
		chunk, err := cr.next()
		if err != nil {
			return err
		}
		if chunk == nil {
			return b.err
		}
		for rest := chunk; len(rest) > 0; {
			var line []byte
			line, rest = nextLine(rest)
			if len(line) == 0 || isBlank(line) {
				flush()
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if cur >= 0 {
					files = addSrcLine(files, line, cur)
				}
				continue
			}
			name, value, ok := field(line)
			if !ok {
				cur = -1
				continue
			}
			cur = sourcesHashField(name)
			if cur >= 0 && len(value) > 0 { // a list starting on the field's own line
				files = addSrcLine(files, value, cur)
			}
			if is(name, "Directory") {
				dir = bytes.TrimPrefix(value, []byte("./"))
				if string(dir) == "." { // flat repository: files beside the Sources
					dir = nil
				}
			}
		}
		flush()
		if b.err != nil {
			return b.err
		}
	}
}

// addSrcLine records one " hash size name" line of checksum list t.
func addSrcLine(files []srcFile, line []byte, t int) []srcFile {
	hx, rest := nextWord(line)
	sz, rest := nextWord(rest)
	name, _ := nextWord(rest)
	if len(name) == 0 {
		return files
	}
	var f *srcFile
	for i := range files {
		if string(files[i].name) == string(name) {
			f = &files[i]
			break
		}
	}
	if f == nil {
		if len(files) < cap(files) {
			files = files[:len(files)+1]
		} else {
			files = append(files, srcFile{})
		}
		f = &files[len(files)-1]
		f.name, f.size, f.have = name, -1, 0
	}
	if s := parseSize(sz); s >= 0 {
		f.size = s
	}
	if decodeHex(f.hashes[t][:], hx, t) {
		f.have |= 1 << t
	}
	return files
}
