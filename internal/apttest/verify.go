package apttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// ErrMismatch means downloaded files are missing, extra or differ from the repository's.
var ErrMismatch = errors.New("apttest: downloaded files differ from the repository")

// VerifyFiles checks that dir holds the named packages of repo (all of them
// when names is empty) under the names apt gives them, each byte-identical
// (SHA256) to the repository's, and no other .deb file.
func VerifyFiles(repo *testrepo.Repo, dir string, names ...string) error {
	if len(names) == 0 {
		names = repo.Names()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".deb") {
			have[e.Name()] = true
		}
	}
	var probs []string
	for _, n := range names {
		p := repo.Package(n)
		if p == nil {
			return fmt.Errorf("apttest: VerifyFiles: no package %q in the repository", n)
		}
		fn := p.AptFileName()
		if !have[fn] {
			probs = append(probs, "missing "+fn)
			continue
		}
		delete(have, fn)
		sum, size, err := sha256File(filepath.Join(dir, fn))
		if err != nil {
			return err
		}
		if sum != p.SHA256 || size != p.Size {
			probs = append(probs, fmt.Sprintf("%s: %d bytes, SHA256 %s; repository: %d bytes, %s", fn, size, sum, p.Size, p.SHA256))
		}
	}
	for fn := range have {
		probs = append(probs, "unexpected "+fn)
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w in %s:\n  %s", ErrMismatch, dir, strings.Join(probs, "\n  "))
	}
	return nil
}

func sha256File(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
