package volunteer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Package is one binary package a Packages index lists, with the fields a
// selection looks at. The hashes are not here: the daemon's index (package
// aptindex) is the one place they are read from.
type Package struct {
	Name, Version, Architecture string
	Priority, Section           string
	Filename                    string // relative to the mirror's base directory: pool/...
	Size                        int64
}

// Limits that keep a hostile or broken index from costing unbounded memory.
const (
	maxLine     = 1 << 20 // longest line of a Packages file (Debian's longest are a few KiB)
	maxPackages = 1 << 20 // paragraphs in one Packages file (Debian main amd64 has ~64 000)
)

var errTooMany = errors.New("volunteer: Packages file lists more than 1 048 576 packages")

// ReadPackages parses a decompressed Packages file and calls fn for every
// paragraph with a Filename and a size. Continuation lines and fields other
// than the ones Package has are skipped.
func ReadPackages(r io.Reader, fn func(p *Package)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var p Package
	have, n := false, 0
	flush := func() error {
		if have && p.Filename != "" && p.Size >= 0 {
			if n++; n > maxPackages {
				return errTooMany
			}
			fn(&p)
		}
		p, have = Package{Size: -1}, false
		return nil
	}
	p.Size = -1
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		have = true
		value = bytes.TrimSpace(value)
		switch string(name) {
		case "Package":
			p.Name = string(value)
		case "Version":
			p.Version = string(value)
		case "Architecture":
			p.Architecture = string(value)
		case "Priority":
			p.Priority = string(value)
		case "Section":
			p.Section = string(value)
		case "Filename":
			p.Filename = string(value)
		case "Size":
			if v, err := strconv.ParseInt(string(value), 10, 64); err == nil && v >= 0 {
				p.Size = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("volunteer: reading Packages: %w", err)
	}
	return flush()
}
