package testrepo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// keyringName is where Build exports the public key, beside dists/ and pool/
// (real archives publish their keys next to the tree too).
const keyringName = "archive-key.gpg"

// The throwaway signing key is made once per process and imported into each
// Build's temporary GNUPGHOME, so rebuilding a repository keeps its key (as a
// real archive does) and apt roots need no new signed-by.
var signingKey struct {
	sync.Mutex
	secret []byte // armored secret key, no passphrase
}

// sign makes InRelease and Release.gpg with the process's throwaway ed25519 key
// in a temporary GNUPGHOME, exports the public key, and stops the gpg-agent
// that gpg starts so no process outlives Build.
func (r *Repo) sign(fresh bool) (err error) {
	// Not under r.Dir: gpg-agent's socket path must fit in sun_path (108 bytes),
	// and test temp dirs can be long.
	home, err := os.MkdirTemp("", "trgpg")
	if err != nil {
		return err
	}
	defer func() {
		// gpgconf knows where the agent's socket is; without it the agent lingers.
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	}()
	gpg := func(args ...string) error {
		base := []string{"--homedir", home, "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
		cmd := exec.Command("gpg", append(base, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("testrepo: gpg %v: %v\n%s", args, err, out.Bytes())
		}
		return nil
	}
	if err := installKey(gpg, home, fresh); err != nil {
		return err
	}
	release := filepath.Join(r.Dir, filepath.FromSlash(r.DistPath("Release")))
	inRelease := filepath.Join(filepath.Dir(release), "InRelease")
	releaseGPG := release + ".gpg"
	os.Remove(inRelease)
	os.Remove(releaseGPG)
	if err := gpg("--digest-algo", "SHA256", "--clearsign", "--output", inRelease, release); err != nil {
		return err
	}
	if err := gpg("--digest-algo", "SHA256", "--armor", "--detach-sign", "--output", releaseGPG, release); err != nil {
		return err
	}
	keyring := filepath.Join(r.Dir, keyringName)
	os.Remove(keyring)
	if err := gpg("--export", "--output", keyring); err != nil {
		return err
	}
	r.Signed, r.KeyringPath = true, keyring
	return nil
}

// installKey puts the process's shared signing key (made on first use) into
// home, or a new key when fresh.
func installKey(gpg func(...string) error, home string, fresh bool) error {
	gen := func() error {
		return gpg("--quick-gen-key", "apt-p2p test archive <archive@apt-p2p.invalid>", "ed25519", "sign", "never")
	}
	if fresh {
		return gen()
	}
	signingKey.Lock()
	defer signingKey.Unlock()
	file := filepath.Join(home, "secret.asc")
	if signingKey.secret != nil {
		if err := os.WriteFile(file, signingKey.secret, 0o600); err != nil {
			return err
		}
		return gpg("--import", file)
	}
	if err := gen(); err != nil {
		return err
	}
	if err := gpg("--armor", "--export-secret-keys", "--output", file); err != nil {
		return err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	signingKey.secret = b
	return nil
}
