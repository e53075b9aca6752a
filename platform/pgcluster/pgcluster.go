// Package pgcluster runs a private PostgreSQL cluster from the locally
// installed PostgreSQL binaries.
//
// It is used by `gatehouse serve` when no database URL is configured, and by
// the test kit. A cluster lives in one directory: its data in Dir/data, its
// unix socket in Dir/run and its server log in Dir/postgres.log. The server
// listens on the unix socket only, so clusters never compete for TCP ports,
// and only the cluster's owner (and root) can reach the socket.
//
// A cluster directory is owned by one process at a time, enforced with a lock
// file: a second Start on a directory whose cluster is running fails with a
// clear error instead of touching the data. A server left running by an owner
// that died is stopped before the new one starts. On Linux the server is also
// told to shut down if the process that started it dies.
//
// The cluster is supervised: a server that exits without being asked to (a
// crash, an OOM kill, an operator's kill -9) is started again, with backoff,
// on the same socket, so the clients' connection pools reconnect by
// themselves. Ready reports whether the server is up in the meantime.
//
// PostgreSQL refuses to run as root. When the process is root, initdb and
// postgres run as the "postgres" user if it exists, otherwise as "nobody", and
// the cluster directory is handed over to that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// User is the name of the superuser of every cluster; authentication is trust.
const User = "gatehouse"

// maxSocketPath is the longest socket path accepted; unix socket addresses are
// limited to 108 bytes on Linux and 104 on the BSDs.
const maxSocketPath = 99

// socketName is the file name of the server's socket inside Dir/run.
const socketName = ".s.PGSQL.5432"

// pollInterval is how often startup and shutdown progress is checked.
const pollInterval = 20 * time.Millisecond

// Options configures a cluster.
type Options struct {
	// Dir holds the cluster: data in Dir/data, the unix socket in Dir/run. Required.
	Dir string
	// Logger receives the cluster's lifecycle events; nil discards them.
	Logger *slog.Logger
	// Fast turns off fsync, synchronous_commit and full_page_writes: tests only.
	Fast bool
}

// Cluster is a running PostgreSQL server owned by this process.
type Cluster struct {
	dir     string
	dataDir string
	runDir  string
	logPath string
	log     *slog.Logger
	lock    *os.File
	bin     binaries
	owner   *owner
	fast    bool

	mu       sync.Mutex
	srv      *server       // the current server process
	done     chan struct{} // closed when the cluster stopped for good (Stop)
	stopping atomic.Bool   // set once Stop begins
	ready    atomic.Bool   // the current server accepts connections
	restarts atomic.Int64  // servers started again after an unexpected exit

	stopOnce sync.Once
	stopErr  error
}

// server is one postgres process.
type server struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // the exit status; read after done is closed
}

// Restart backoff after an unexpected exit: from restartMin, doubling, up to
// restartMax between attempts.
const (
	restartMin = 100 * time.Millisecond
	restartMax = 5 * time.Second
)

// Start starts the cluster in opts.Dir, creating it with initdb on first use,
// and returns once the server accepts connections or ctx is done.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: resolve dir: %w", err)
	}
	if strings.ContainsAny(dir, "\"\x00") {
		return nil, fmt.Errorf("pgcluster: dir %q must not contain a double quote", dir)
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		runDir:  filepath.Join(dir, "run"),
		logPath: filepath.Join(dir, "postgres.log"),
		log:     opts.Logger,
		done:    make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if socket := filepath.Join(c.runDir, socketName); len(socket) > maxSocketPath {
		return nil, fmt.Errorf("pgcluster: socket path %s is %d bytes, more than the %d a unix socket allows: choose a shorter Dir", socket, len(socket), maxSocketPath)
	}

	bin, err := findBinaries(c.dataDir)
	if err != nil {
		return nil, err
	}
	owner, err := clusterOwner()
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgcluster: create dir: %w", err)
	}
	if c.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	c.bin, c.owner, c.fast = bin, owner, opts.Fast
	if err := c.start(ctx); err != nil {
		c.lock.Close()
		return nil, err
	}
	go c.supervise()
	return c, nil
}

// start prepares the directories, clears a leftover server, runs initdb if
// needed and starts postgres; the caller holds the directory lock.
func (c *Cluster) start(ctx context.Context) error {
	bin, owner, fast := c.bin, c.owner, c.fast
	for _, d := range []string{c.dataDir, c.runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("pgcluster: create dir: %w", err)
		}
	}
	if owner != nil {
		if err := checkTraversable(c.dir, owner); err != nil {
			return err
		}
		if err := owner.chown(c.dir, c.dataDir, c.runDir); err != nil {
			return err
		}
	}
	if err := c.stopLeftover(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx, bin, owner, fast); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("pgcluster: inspect data dir: %w", err)
	}
	return c.startServer(ctx)
}

// initdb creates a new cluster in the (empty) data directory.
func (c *Cluster) initdb(ctx context.Context, bin binaries, owner *owner, fast bool) error {
	c.log.InfoContext(ctx, "creating PostgreSQL cluster", "dir", c.dataDir, "bin", bin.dir)
	args := []string{"-D", c.dataDir, "-U", User, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, bin.initdb, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner.credential()}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, tail(out))
	}
	return nil
}

// startServer runs postgres as a child process and waits until it is ready;
// it becomes the cluster's current server.
func (c *Cluster) startServer(ctx context.Context) error {
	bin, owner, fast := c.bin, c.owner, c.fast
	logFile, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgcluster: open server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	args := []string{
		"-D", c.dataDir,
		"-c", "listen_addresses=",
		"-c", `unix_socket_directories="` + c.runDir + `"`,
		"-c", "unix_socket_permissions=0700",
	}
	if fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(bin.postgres, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr(owner.credential())

	c.log.InfoContext(ctx, "starting PostgreSQL", "dir", c.dir, "fast", fast)
	srv, err := spawn(cmd)
	if err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	if err := c.waitReady(ctx, srv); err != nil {
		kill(srv)
		return fmt.Errorf("pgcluster: start postgres: %w\n%s", err, c.logTail(logStart))
	}
	c.ready.Store(true)
	c.log.InfoContext(ctx, "PostgreSQL ready", "socket_dir", c.runDir, "pid", cmd.Process.Pid)
	return nil
}

// supervise starts the server again whenever it exits unless Stop asked it
// to, until Stop; then it closes done.
func (c *Cluster) supervise() {
	defer close(c.done)
	for {
		c.mu.Lock()
		srv := c.srv
		c.mu.Unlock()
		<-srv.done
		c.ready.Store(false)
		if c.stopping.Load() {
			return
		}
		c.log.Error("PostgreSQL exited unexpectedly; starting it again", "dir", c.dir, "err", srv.waitErr)
		for backoff := restartMin; ; backoff = min(2*backoff, restartMax) {
			time.Sleep(backoff)
			if c.stopping.Load() {
				return
			}
			// A killed postmaster leaves backends that exit on their own
			// within moments, and a pid file: start clears what it must.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := c.start(ctx)
			cancel()
			if err == nil {
				c.restarts.Add(1)
				c.log.Warn("PostgreSQL restarted after an unexpected exit", "dir", c.dir)
				break
			}
			c.log.Error("PostgreSQL could not be started again; retrying", "dir", c.dir, "err", err, "backoff", backoff)
		}
		if c.stopping.Load() {
			// Stop came while the new server started: it may not have seen it.
			c.mu.Lock()
			_ = c.srv.cmd.Process.Signal(syscall.SIGINT)
			c.mu.Unlock()
		}
	}
}

// Ready reports whether the server currently accepts connections (false
// while a crashed server is being started again, and after Stop).
func (c *Cluster) Ready() bool { return c.ready.Load() }

// Restarts is how many times the server was started again after an
// unexpected exit.
func (c *Cluster) Restarts() int64 { return c.restarts.Load() }

// spawn starts the postgres process from a goroutine locked to its OS thread
// until the process exits: the parent-death signal is tied to the thread that
// started the child, so that thread must outlive the server.
func spawn(cmd *exec.Cmd) (*server, error) {
	srv := &server{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		started <- nil
		srv.waitErr = cmd.Wait()
		close(srv.done)
		// The goroutine ends locked, which retires the thread: harmless.
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return srv, nil
}

// waitReady polls postmaster.pid until the server reports it is ready.
func (c *Cluster) waitReady(ctx context.Context, srv *server) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	pid := srv.cmd.Process.Pid
	for {
		if readPIDFile(c.dataDir).ready(pid) {
			return nil
		}
		select {
		case <-srv.done:
			return fmt.Errorf("postgres exited during startup: %v", srv.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// URL returns a connection string for database dbname over the cluster's socket.
func (c *Cluster) URL(dbname string) string {
	q := url.Values{"host": {c.runDir}, "sslmode": {"disable"}}.Encode()
	// libpq and pgx do not decode '+' as a space; Encode escapes a real '+'.
	u := url.URL{Scheme: "postgres", User: url.User(User), Path: "/" + dbname, RawQuery: strings.ReplaceAll(q, "+", "%20")}
	return u.String()
}

// Dir returns the absolute directory the cluster lives in.
func (c *Cluster) Dir() string { return c.dir }

// Done is closed once Stop has stopped the cluster for good (a server that
// crashes is started again; see Ready).
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits for it to exit; if ctx ends first the server is shut down immediately.
// The cluster directory is released for the next Start. Later calls return the
// first call's result.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stop(ctx)
		c.lock.Close()
	})
	return c.stopErr
}

// stop signals the current server and waits until the supervisor has seen
// it exit.
func (c *Cluster) stop(ctx context.Context) error {
	c.stopping.Store(true)
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgcluster: signal postgres: %w", err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.mu.Lock()
		srv = c.srv
		c.mu.Unlock()
		kill(srv)
		<-c.done
		return fmt.Errorf("pgcluster: stop: %w", ctx.Err())
	}
	c.mu.Lock()
	srv = c.srv
	c.mu.Unlock()
	if srv.waitErr != nil {
		return fmt.Errorf("pgcluster: postgres exited: %w", srv.waitErr)
	}
	c.log.InfoContext(ctx, "PostgreSQL stopped", "dir", c.dir)
	return nil
}

// kill shuts a server down immediately and waits for it to exit: SIGQUIT
// makes postgres stop its backends, SIGKILL follows if that takes too long.
func kill(srv *server) {
	_ = srv.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.done
	}
}

// stopLeftover stops a server still running on the data directory, left by a
// previous owner that died, and clears stale lock files. The caller holds the
// directory lock, so no live owner can be using the cluster.
func (c *Cluster) stopLeftover(ctx context.Context) error {
	pf := readPIDFile(c.dataDir)
	if pf.pid > 0 && postmasterRunning(pf.pid, c.dataDir) {
		c.log.WarnContext(ctx, "stopping PostgreSQL left running by a previous process", "dir", c.dir, "pid", pf.pid)
		if err := stopPID(ctx, pf.pid, c.dataDir); err != nil {
			return fmt.Errorf("pgcluster: stop server left running (pid %d) in %s: %w", pf.pid, c.dataDir, err)
		}
	}
	// No postmaster runs on this cluster now: any lock files are stale, and
	// their pids may since have been reused by unrelated processes.
	for _, f := range []string{filepath.Join(c.dataDir, "postmaster.pid"), filepath.Join(c.runDir, socketName+".lock")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgcluster: remove stale lock file: %w", err)
		}
	}
	return nil
}

// stopPID asks a postmaster that is not our child to shut down and waits until
// it is gone, escalating to an immediate shutdown after a while.
func stopPID(ctx context.Context, pid int, dataDir string) error {
	steps := []struct {
		sig     syscall.Signal
		timeout time.Duration
	}{{syscall.SIGINT, 60 * time.Second}, {syscall.SIGQUIT, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for _, step := range steps {
		if err := syscall.Kill(pid, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal: %w", err)
		}
		deadline := time.After(step.timeout)
	wait:
		for postmasterRunning(pid, dataDir) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline:
				break wait
			case <-tick.C:
			}
		}
		if !postmasterRunning(pid, dataDir) {
			return nil
		}
	}
	return errors.New("server did not exit")
}

// lockDir takes the exclusive lock that makes this process the cluster's owner.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "pgcluster.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("pgcluster: the cluster in %s is already running, owned by another Start (this or another process)", dir)
		}
		return nil, fmt.Errorf("pgcluster: lock %s: %w", dir, err)
	}
	return f, nil
}

// pidFile is the part of postmaster.pid that startup and recovery look at.
type pidFile struct {
	pid    int
	status string
}

// readPIDFile reads dataDir/postmaster.pid; a missing or partial file yields zero values.
func readPIDFile(dataDir string) pidFile {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}
	}
	lines := strings.Split(string(b), "\n")
	var pf pidFile
	pf.pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	// Line 8 (LOCK_FILE_LINE_PM_STATUS) is "ready" once connections are accepted.
	if len(lines) >= 8 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf
}

// ready reports whether the file was written by pid and says it accepts connections.
func (pf pidFile) ready(pid int) bool {
	return pf.pid == pid && pf.status == "ready"
}

// childEnv is the environment for initdb and postgres: ours without the PG*
// variables, which would override the explicit settings.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// logTail returns the end of what the server logged since offset from.
func (c *Cluster) logTail(from int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, from, 1<<20))
	if err != nil {
		return ""
	}
	return "server log (" + c.logPath + "):\n" + tail(b)
}

// tail returns the last few KiB of a command's output.
func tail(b []byte) string {
	const limit = 4 << 10
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}

// pid is the current server's process id.
func (c *Cluster) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv.cmd.Process.Pid
}
