package apttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one apt-get run when the context has no deadline.
const DefaultTimeout = 2 * time.Minute

// ErrNoAptGet means apt-get is not installed.
var ErrNoAptGet = errors.New("apttest: apt-get not found (install apt)")

// Root is a private apt root.
type Root struct {
	Dir string // absolute

	// Arch is apt's native and only architecture; default "amd64" (the test
	// repositories' architecture), so apt does not ask the host's dpkg.
	Arch string
	// HTTPTimeout is Acquire::http::Timeout (connect and idle read); default 10 s.
	HTTPTimeout time.Duration
	// Timeout bounds each Run when ctx has no deadline; default DefaultTimeout.
	Timeout time.Duration
	// Start, if set, starts each apt process instead of (*exec.Cmd).Start: a
	// network namespace's Start (netbed.Host.Start) runs apt inside it.
	Start func(*exec.Cmd) error

	mu          sync.Mutex
	proxy       string
	unsigned    bool // a sources line says trusted=yes
	extra       [][2]string
	lastCommand []string
	lastPID     int // process (and process group) id of the latest run
}

// Directories inside the root, relative to Root.Dir.
const (
	etcDir      = "etc/apt"
	listsDir    = "var/lib/apt/lists"
	archivesDir = "var/cache/apt/archives"
	statusFile  = "var/lib/dpkg/status"
	logDir      = "var/log/apt"
)

// NewRoot creates an empty apt root in dir (created if missing).
func NewRoot(dir string) (*Root, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, ErrNoAptGet
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{
		etcDir + "/sources.list.d", etcDir + "/preferences.d", etcDir + "/apt.conf.d", etcDir + "/trusted.gpg.d",
		etcDir + "/auth.conf.d",
		listsDir + "/partial", archivesDir + "/partial", "var/lib/dpkg", logDir,
	} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	r := &Root{Dir: dir, Arch: "amd64", HTTPTimeout: 10 * time.Second, Timeout: DefaultTimeout}
	for _, f := range []string{statusFile, etcDir + "/sources.list"} {
		if err := os.WriteFile(r.path(f), nil, 0o644); err != nil {
			return nil, err
		}
	}
	// Read before any configuration snippet (pkgInitConfig reads APT_CONFIG,
	// then Dir::Etc::Parts, then Dir::Etc::Main), so this is what keeps the
	// host's apt.conf.d out.
	conf := fmt.Sprintf("Dir \"%[1]s/\";\nDir::Etc \"%[1]s/etc/apt/\";\nDir::Etc::Parts \"%[1]s/etc/apt/apt.conf.d/\";\nDir::Etc::Main \"%[1]s/etc/apt/apt.conf\";\n", dir)
	if err := os.WriteFile(r.path(etcDir+"/apt.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Root) path(rel string) string { return filepath.Join(r.Dir, filepath.FromSlash(rel)) }

// ListsDir is where apt keeps downloaded indexes.
func (r *Root) ListsDir() string { return r.path(listsDir) }

// ArchivesDir is where install --download-only puts .deb files.
func (r *Root) ArchivesDir() string { return r.path(archivesDir) }

// SetSources replaces sources.list with lines (one-line style, e.g. from
// testrepo.Repo.SourcesLine). A line with trusted=yes turns on
// APT::Get::AllowUnauthenticated, which apt-get download needs for such sources.
func (r *Root) SetSources(lines ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsigned = false
	for _, l := range lines {
		if strings.Contains(l, "trusted=yes") {
			r.unsigned = true
		}
	}
	return os.WriteFile(r.path(etcDir+"/sources.list"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// SetProxy sets Acquire::http::Proxy to url ("http://127.0.0.2:9977"); "" means
// DIRECT, which also ignores any http_proxy in the environment.
func (r *Root) SetProxy(url string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proxy = url
}

// SetOption adds (or replaces) a -o Key=Value given to every later run, e.g.
// ("Acquire::http::Pipeline-Depth", "0").
func (r *Root) SetOption(key, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.extra {
		if r.extra[i][0] == key {
			r.extra[i][1] = value
			return
		}
	}
	r.extra = append(r.extra, [2]string{key, value})
}

// Options is the -o list each run gets, as "Key=Value" strings.
func (r *Root) Options() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.path
	proxy := r.proxy
	if proxy == "" {
		proxy = "DIRECT"
	}
	kv := [][2]string{
		{"Dir", r.Dir + "/"},
		{"Dir::State", p("var/lib/apt") + "/"},
		{"Dir::State::Lists", p(listsDir) + "/"},
		{"Dir::State::status", p(statusFile)},
		{"Dir::Cache", p("var/cache/apt") + "/"},
		{"Dir::Cache::Archives", p(archivesDir) + "/"},
		{"Dir::Etc", p(etcDir) + "/"},
		{"Dir::Etc::Main", p(etcDir + "/apt.conf")},
		{"Dir::Etc::Parts", p(etcDir+"/apt.conf.d") + "/"},
		{"Dir::Etc::SourceList", p(etcDir + "/sources.list")},
		{"Dir::Etc::SourceParts", p(etcDir+"/sources.list.d") + "/"},
		{"Dir::Etc::Preferences", p(etcDir + "/preferences")},
		{"Dir::Etc::PreferencesParts", p(etcDir+"/preferences.d") + "/"},
		{"Dir::Etc::Trusted", p(etcDir + "/trusted.gpg")},
		{"Dir::Etc::TrustedParts", p(etcDir+"/trusted.gpg.d") + "/"},
		{"Dir::Etc::netrc", p(etcDir + "/auth.conf")},
		{"Dir::Etc::netrcparts", p(etcDir+"/auth.conf.d") + "/"},
		{"Dir::Log", p(logDir) + "/"},
		{"Debug::NoLocking", "1"},
		// Otherwise methods run as _apt, which cannot read a root-owned temp dir.
		{"APT::Sandbox::User", "root"},
		{"APT::Architecture", r.Arch},
		{"APT::Architectures::", r.Arch},
		{"Acquire::Languages", "none"},
		{"Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled", "false"},
		{"Acquire::PDiffs", "false"},
		{"Acquire::Retries", "0"},
		{"Acquire::http::Timeout", fmt.Sprint(max(1, int(r.HTTPTimeout/time.Second)))},
		{"Acquire::http::Proxy", proxy},
		{"Acquire::https::Proxy", "DIRECT"},
	}
	if r.unsigned {
		kv = append(kv, [2]string{"APT::Get::AllowUnauthenticated", "true"})
	}
	kv = append(kv, r.extra...)
	out := make([]string, len(kv))
	for i, o := range kv {
		out[i] = o[0] + "=" + o[1]
	}
	return out
}

// RunError is a failed apt run, with everything apt said.
type RunError struct {
	Args           []string // program and arguments, without the -o options
	Err            error    // from the process (exit status, context)
	Stdout, Stderr string
}

func (e *RunError) Error() string {
	return fmt.Sprintf("apttest: %s: %v\n--- stdout:\n%s--- stderr:\n%s", strings.Join(e.Args, " "), e.Err, e.Stdout, e.Stderr)
}

func (e *RunError) Unwrap() error { return e.Err }

// Run runs apt-get with the root's options and then args, in r.Dir. A failure
// (non-zero exit, timeout) is a *RunError carrying apt's output. On timeout the
// whole process group (apt-get and the methods it forked) is killed; after a
// normal exit the methods have already gone (they exit when apt-get closes
// their pipes).
func (r *Root) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return r.runIn(ctx, r.Dir, "apt-get", args...)
}

// RunTool is Run for another apt program that takes the same options
// ("apt-cache", "apt-config"), e.g. RunTool(ctx, "apt-cache", "policy").
func (r *Root) RunTool(ctx context.Context, tool string, args ...string) (stdout, stderr string, err error) {
	return r.runIn(ctx, r.Dir, tool, args...)
}

func (r *Root) runIn(ctx context.Context, dir, tool string, args ...string) (string, string, error) {
	if _, ok := ctx.Deadline(); !ok {
		t := r.Timeout
		if t <= 0 {
			t = DefaultTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	var argv []string
	for _, o := range r.Options() {
		argv = append(argv, "-o", o)
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, tool, argv...)
	cmd.Dir = dir
	// A fixed environment: no inherited http_proxy, stable English messages.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + r.Dir,
		"LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"APT_CONFIG=" + r.path(etcDir+"/apt.conf"),
	}
	setProcessGroup(cmd)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	r.mu.Lock()
	r.lastCommand = append([]string{tool}, argv...)
	r.mu.Unlock()
	start := r.Start
	if start == nil {
		start = (*exec.Cmd).Start
	}
	runErr := start(cmd)
	if runErr == nil {
		r.mu.Lock()
		r.lastPID = cmd.Process.Pid
		r.mu.Unlock()
		runErr = cmd.Wait()
	}
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (%v)", ctx.Err(), runErr)
		}
		return out.String(), errb.String(), &RunError{Args: append([]string{tool}, args...), Err: runErr, Stdout: out.String(), Stderr: errb.String()}
	}
	return out.String(), errb.String(), nil
}

// LastCommand is the full argv of the latest run, for reproducing it by hand.
func (r *Root) LastCommand() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lastCommand...)
}

// errWarnings marks a run that exited 0 but printed warnings or errors.
var errWarnings = errors.New("apttest: apt-get reported warnings or errors")

// strict fails a successful run whose stderr has "W:" or "E:" lines: apt-get
// update exits 0 after ignoring an index it could not fetch or verify, and a
// test must not mistake that for success.
func strict(args []string, stdout, stderr string, err error) error {
	if err != nil {
		return err
	}
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") {
			return &RunError{Args: append([]string{"apt-get"}, args...), Err: errWarnings, Stdout: stdout, Stderr: stderr}
		}
	}
	return nil
}

// Update runs apt-get update and fails on any warning.
func (r *Root) Update(ctx context.Context) error {
	args := []string{"--error-on=any", "update"}
	o, e, err := r.Run(ctx, args...)
	return strict(args, o, e, err)
}

// Download runs apt-get download pkgs in workdir (apt writes the files into
// its working directory, named <name>_<version>_<arch>.deb with ':' in the
// version written as "%3a").
func (r *Root) Download(ctx context.Context, workdir string, pkgs ...string) error {
	args := append([]string{"download"}, pkgs...)
	o, e, err := r.runIn(ctx, workdir, "apt-get", args...)
	return strict(args, o, e, err)
}

// InstallDownloadOnly runs apt-get install --download-only -y pkgs; the files
// land in ArchivesDir. Nothing is unpacked or configured.
func (r *Root) InstallDownloadOnly(ctx context.Context, pkgs ...string) error {
	args := append([]string{"install", "--download-only", "--yes", "--no-install-recommends"}, pkgs...)
	o, e, err := r.Run(ctx, args...)
	return strict(args, o, e, err)
}

// Clean removes downloaded indexes and archives, so the next run starts cold.
func (r *Root) Clean() error {
	for _, d := range []string{listsDir, archivesDir} {
		if err := os.RemoveAll(r.path(d)); err != nil {
			return err
		}
		if err := os.MkdirAll(r.path(d+"/partial"), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"} {
		os.Remove(r.path(f))
	}
	return nil
}
