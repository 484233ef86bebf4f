package netbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/var/run/netns"

// Namespace is one network namespace of a Bed, named under /var/run/netns so
// `ip netns`, `ip -n` and `tc -n` see it while the bed runs.
type Namespace struct {
	// Name is the namespace's name (ip netns list).
	Name string
	fd   int // open /var/run/netns/<Name>
}

// ErrClosed is returned for work asked of a namespace or bed that was closed.
var ErrClosed = errors.New("netbed: closed")

// origNS is the test process's own network namespace, which Do returns to.
var origNS = -1

func openOrigNS() error {
	if origNS >= 0 {
		return nil
	}
	// /proc/self names the thread-group leader, which never leaves the
	// process's namespace (only Do's locked threads do).
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netbed: opening this process's network namespace: %w", err)
	}
	origNS = fd
	return nil
}

// newNamespace creates the named namespace with its loopback up, and settings
// every namespace of a bed shares: no IPv6 duplicate address detection (an
// address is usable at once) and no router advertisements.
func newNamespace(name string) (*Namespace, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netbed: ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	fd, err := unix.Open(filepath.Join(netnsDir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		deleteNamespace(name)
		return nil, fmt.Errorf("netbed: opening namespace %s: %w", name, err)
	}
	ns := &Namespace{Name: name, fd: fd}
	err = ns.Sysctl(map[string]string{
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
		"net/ipv6/conf/all/accept_ra":      "0",
		"net/ipv6/conf/default/accept_ra":  "0",
	})
	if err == nil {
		err = ns.IP("link set lo up")
	}
	if err != nil {
		ns.close()
		return nil, err
	}
	return ns, nil
}

// close deletes the namespace. Processes still inside keep it alive, unnamed,
// until they exit; Bed.Close stops its processes first.
func (ns *Namespace) close() error {
	if ns.fd >= 0 {
		unix.Close(ns.fd)
		ns.fd = -1
	}
	return deleteNamespace(ns.Name)
}

func deleteNamespace(name string) error {
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(filepath.Join(netnsDir, name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("netbed: ip netns delete %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Do runs fn on an OS thread that has entered the namespace. Sockets created
// by fn itself (net.Listen, net.Dial, a server's listener) live in the
// namespace for their whole life, wherever they are used afterwards;
// goroutines fn starts do not run in the namespace (Go starts new threads from
// a clean template thread). Files under /proc/sys/net opened by fn are the
// namespace's.
func (ns *Namespace) Do(fn func() error) (err error) {
	if ns.fd < 0 {
		return ErrClosed
	}
	if err := openOrigNS(); err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netbed: entering namespace %s: %w", ns.Name, err)
	}
	defer func() {
		if rerr := unix.Setns(origNS, unix.CLONE_NEWNET); rerr != nil {
			// Leave the thread locked: it exits with this goroutine instead of
			// running other goroutines in the wrong namespace.
			err = errors.Join(err, fmt.Errorf("netbed: leaving namespace %s: %w", ns.Name, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Start starts cmd inside the namespace: it is forked from a thread that has
// entered it, so the process and everything it starts live there. Unless the
// caller set cmd.SysProcAttr, the process is killed if the test process dies
// (Pdeathsig), so a killed test leaves no daemon behind.
func (ns *Namespace) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	return ns.Do(cmd.Start)
}

// Run runs a program inside the namespace and returns its standard output; a
// failure carries its standard error.
func (ns *Namespace) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := ns.Start(cmd); err != nil {
		return "", fmt.Errorf("netbed: %s in %s: %w", name, ns.Name, err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("netbed: %s %s in %s: %v: %s", name, strings.Join(args, " "), ns.Name, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.String(), nil
}

// IP runs `ip -n <ns> -batch -` with one ip command per line ("link set lo up").
func (ns *Namespace) IP(lines ...string) error {
	return batch("ip", ns.Name, lines)
}

// TC runs `tc -n <ns> -batch -` with one tc command per line.
func (ns *Namespace) TC(lines ...string) error {
	return batch("tc", ns.Name, lines)
}

func batch(tool, ns string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	cmd := exec.Command(tool, "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netbed: %s -n %s: %v: %s\n(commands:\n  %s)", tool, ns, err, bytes.TrimSpace(out), strings.Join(lines, "\n  "))
	}
	return nil
}

// Sysctl sets /proc/sys/net values of the namespace; keys are paths under
// /proc/sys ("net/ipv4/ip_forward").
func (ns *Namespace) Sysctl(kv map[string]string) error {
	return ns.Do(func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("netbed: sysctl %s=%s in %s: %w", k, v, ns.Name, err)
			}
		}
		return nil
	})
}

// Listen is net.Listen inside the namespace.
func (ns *Namespace) Listen(network, addr string) (ln net.Listener, err error) {
	err = ns.Do(func() error {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside the namespace.
func (ns *Namespace) ListenPacket(network, addr string) (c net.PacketConn, err error) {
	err = ns.Do(func() error {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// DialContext dials from inside the namespace.
func (ns *Namespace) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = ns.Do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client whose connections start inside the namespace
// (for a daemon's /stats.json, or a mirror, from a host of the bed). It uses
// no proxy from the environment.
func (ns *Namespace) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         ns.DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
