package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// dropPrivileges switches to the USERNAME user when started as root and that
// user exists, as the original did under twistd (reference §1.1). The cache
// directory is created first and handed to that user. A missing user is not an
// error: the daemon then keeps running as it was started.
func dropPrivileges(name, cacheDir string) (string, error) {
	if name == "" || os.Geteuid() != 0 {
		return "", nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Sprintf("user %q does not exist; running as root (set USERNAME = to silence this)", name), nil
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("user %q has a non-numeric uid/gid", name)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory %s: %w", cacheDir, err)
	}
	// Hand the cache over, including what an earlier run as root left behind.
	err = filepath.Walk(cacheDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return "", fmt.Errorf("giving %s to %s: %w", cacheDir, name, err)
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return "", fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return "", fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return "", fmt.Errorf("setuid %d: %w", uid, err)
	}
	return "", nil
}
