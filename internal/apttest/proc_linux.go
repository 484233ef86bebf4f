package apttest

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts apt-get and the methods it forks into their own process
// group, killed as a whole on cancel, and kills apt-get if the test binary dies.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
