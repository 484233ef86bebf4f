//go:build !linux

package apttest

import "os/exec"

// apt-get is a Linux program; elsewhere only the plain process is managed.
func setProcessGroup(*exec.Cmd) {}
