// Package proctest holds what tests that run apt-p2p daemons share: building
// the binary once per test process, finding a port free for both TCP and UDP
// (the daemon uses one number for both), and a log buffer safe to write from a
// process's output while a test reads it. It is for tests and benchmarks only.
package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RunWithDaemon builds cmd/apt-p2p into a temporary directory, stores its path in
// *binary, runs the tests and exits with their status. Call it from TestMain.
func RunWithDaemon(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "apt-p2p-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "apt-p2p")
	build := exec.Command("go", "build", "-o", *binary, "github.com/apt-p2p/apt-p2p/cmd/apt-p2p")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building apt-p2p:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// FreePort finds a port on ip that is free for both TCP and UDP.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			uc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP on " + ip)
	return 0
}

// LockedBuffer collects output written from other goroutines (a process's
// stdout and stderr, a logger) for a test to read.
type LockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail returns the last n lines of s, for logs printed when a test fails.
func Tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
