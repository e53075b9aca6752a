package pgcluster

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// stopsWithOwner tells whether the server shuts down when its owner dies.
const stopsWithOwner = true

// sysProcAttr runs postgres as cred in its own process group, so a terminal's
// Ctrl-C reaches only us, and has it shut down (fast) if this process dies.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
}

// postmasterRunning reports whether pid is a live process serving dataDir:
// a postmaster's working directory is its data directory, which tells it
// apart from an unrelated process that reused the pid of a stale lock file.
func postmasterRunning(pid int, dataDir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if errors.Is(err, os.ErrPermission) {
		return syscall.Kill(pid, 0) == nil // someone else's process: assume the worst
	}
	if err != nil {
		return false // gone, or a zombie
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
	}
	return cwd == want
}
