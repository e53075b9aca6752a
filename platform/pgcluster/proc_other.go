//go:build !linux

package pgcluster

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopsWithOwner tells whether the server shuts down when its owner dies.
const stopsWithOwner = false

// sysProcAttr runs postgres as cred in its own process group, so a terminal's
// Ctrl-C reaches only us.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}

// postmasterRunning reports whether pid is a live postgres process. Without
// /proc it cannot check that the process serves dataDir, but it does check the
// program's name so a stale lock file's reused pid is not taken for a server.
func postmasterRunning(pid int, _ string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ps", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	return err == nil && strings.Contains(string(out), "postgres")
}
