package testrepo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// lookPath is exec.LookPath with /usr/sbin and /sbin added, where Debian keeps
// some tools that a non-login PATH lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// debEpoch fixes every timestamp inside the .deb so a seed always gives the same bytes.
const debEpoch = 1700000000

// buildDeb builds one package into its pool path and returns it with its hashes.
// The package's control stanza is left beside it in <deb>.control for the
// Packages index.
func buildDeb(dir, stage string, opts Options, s PackageSpec) (Package, error) {
	if s.Version == "" {
		s.Version = "1.0-1"
	}
	if s.Component == "" {
		s.Component = opts.Component
	}
	if s.Arch == "" {
		s.Arch = opts.Arch
	}
	if s.Priority == "" {
		s.Priority = "optional"
	}
	if s.Section == "" {
		s.Section = "misc"
	}
	if s.Size <= 0 {
		return Package{}, fmt.Errorf("%w: %s: size %d", ErrBadSpec, s.Name, s.Size)
	}
	// Debian pool file names drop the epoch.
	fileVer := s.Version
	if i := strings.IndexByte(fileVer, ':'); i >= 0 {
		fileVer = fileVer[i+1:]
	}
	rel := path.Join("pool", s.Component, poolDir(s.Name), s.Name,
		fmt.Sprintf("%s_%s_%s.deb", s.Name, fileVer, s.Arch))
	out := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Package{}, err
	}

	root := filepath.Join(stage, s.Name)
	payloadDir := filepath.Join(root, "usr", "share", "apt-p2p-test", s.Name)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		return Package{}, err
	}
	if err := os.MkdirAll(payloadDir, 0o755); err != nil {
		return Package{}, err
	}
	payload := filepath.Join(payloadDir, "payload")

	// With -Znone the .deb is the payload plus ~22 KiB (a 10 KiB control.tar, tar
	// headers, padding to 10 KiB records). Start under the target and correct.
	want := s.Size - 24<<10
	var size int64
	var ctl []byte
	for try := 0; ; try++ {
		want = max(want, 1)
		if err := writePayload(payload, payloadSeed(opts.Seed, s), want); err != nil {
			return Package{}, err
		}
		ctl = controlFile(s, want)
		if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), ctl, 0o644); err != nil {
			return Package{}, err
		}
		t := time.Unix(debEpoch, 0)
		for _, p := range []string{payload, payloadDir, filepath.Dir(payloadDir), filepath.Join(root, "DEBIAN", "control")} {
			os.Chtimes(p, t, t)
		}
		cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Znone", "--build", root, out)
		cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", debEpoch))
		if b, err := cmd.CombinedOutput(); err != nil {
			return Package{}, fmt.Errorf("testrepo: dpkg-deb --build %s: %v\n%s", s.Name, err, b)
		}
		st, err := os.Stat(out)
		if err != nil {
			return Package{}, err
		}
		size = st.Size()
		if size <= s.Size && (s.Size-size < 12<<10 || try > 0) {
			break
		}
		if want == 1 && size > s.Size {
			return Package{}, fmt.Errorf("%w: %s: %d bytes is below the smallest .deb (%d bytes)", ErrBadSpec, s.Name, s.Size, size)
		}
		if try == 4 {
			return Package{}, fmt.Errorf("testrepo: %s: could not hit %d bytes (last %d)", s.Name, s.Size, size)
		}
		want += s.Size - size - 10<<10
	}
	if err := os.RemoveAll(root); err != nil {
		return Package{}, err
	}
	h, err := hashFile(out)
	if err != nil {
		return Package{}, err
	}
	p := Package{Name: s.Name, Version: s.Version, Arch: s.Arch, Component: s.Component, Priority: s.Priority, Section: s.Section,
		Filename: rel, Path: out, Size: size}
	p.MD5, p.SHA1, p.SHA256 = h.hex()
	if err := os.WriteFile(out+".control", ctl, 0o644); err != nil {
		return Package{}, err
	}
	return p, nil
}

func controlFile(s PackageSpec, payload int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: %s\n", s.Name, s.Version, s.Arch)
	b.WriteString("Maintainer: apt-p2p tests <tests@apt-p2p.invalid>\n")
	fmt.Fprintf(&b, "Installed-Size: %d\n", (payload+1023)/1024)
	fmt.Fprintf(&b, "Section: %s\nPriority: %s\n", s.Section, s.Priority)
	fmt.Fprintf(&b, "Description: apt-p2p test package (%d-byte .deb target)\n", s.Size)
	b.WriteString(" Random payload for apt-p2p's end-to-end tests; it installs one file under\n /usr/share/apt-p2p-test.\n")
	return b.Bytes()
}

func payloadSeed(seed uint64, s PackageSpec) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return sha256.Sum256(append(append(b[:], s.Name+"\x00"...), s.Version...))
}

// writePayload writes n incompressible bytes (ChaCha8 output) so that a .deb's
// size is what was asked for whatever compressor a tool applies later.
func writePayload(p string, seed [32]byte, n int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, 1<<20)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			return err
		}
		n -= int64(len(chunk))
	}
	return f.Close()
}
