package pgcluster

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// helperEnv makes the test binary act as a process that starts a cluster in
// the named directory, reports "ready" and then waits to be killed.
const helperEnv = "PGCLUSTER_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		runHelper(dir)
		return
	}
	os.Exit(m.Run())
}

func runHelper(dir string) {
	if _, err := Start(context.Background(), Options{Dir: dir, Fast: true}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

// clusterDir returns a fresh directory for a cluster, removed after the test.
// It is made under os.TempDir() rather than t.TempDir(), whose parents are
// private to root and so not traversable by the user PostgreSQL runs as.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(os.TempDir(), "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, dir string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

func stop(t *testing.T, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Stop returned but the server process has not exited")
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("postmaster.pid still present after Stop: %v", err)
	}
}

func connect(t *testing.T, c *Cluster) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func rows(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	r, err := conn.Query(context.Background(), "SELECT v FROM kept ORDER BY v")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	got, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	return got
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := clusterDir(t)
	c := start(t, dir)
	assertUnprivileged(t, c)
	conn := connect(t, c)
	exec1(t, conn, "CREATE TABLE kept (v text)")
	exec1(t, conn, "INSERT INTO kept VALUES ('a'), ('b')")

	// A second Start on the running cluster is refused and harms nothing.
	_, err := Start(context.Background(), Options{Dir: dir, Fast: true})
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start while running: got %v, want an already-running error", err)
	}
	exec1(t, conn, "INSERT INTO kept VALUES ('c')")
	if got := rows(t, conn); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("rows after refused second Start = %v", got)
	}
	conn.Close(context.Background())
	stop(t, c)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	c = start(t, dir)
	if got := rows(t, connect(t, c)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("rows after restart = %v, want [a b c]", got)
	}
	stop(t, c)
}

func TestStartRecoversFromDeadOwner(t *testing.T) {
	tests := []struct {
		name string
		// orphan starts a cluster in dir whose owner then dies, leaving the
		// table kept with row 'x'; it returns the leftover server's pid.
		orphan func(t *testing.T, dir string) int
	}{
		{"owner killed", orphanByKilledProcess},
		{"server outlives owner", orphanByReleasedLock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := clusterDir(t)
			oldPID := tt.orphan(t, dir)

			c := start(t, dir)
			if c.pid() == oldPID {
				t.Fatalf("new server has the old pid %d", oldPID)
			}
			if postmasterRunning(oldPID, c.dataDir) {
				t.Fatalf("leftover server %d still running", oldPID)
			}
			if got := rows(t, connect(t, c)); !slices.Equal(got, []string{"x"}) {
				t.Fatalf("rows = %v, want [x]", got)
			}
			stop(t, c)
		})
	}
}

// orphanByKilledProcess starts a cluster from a child process and SIGKILLs it.
func orphanByKilledProcess(t *testing.T, dir string) int {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q", line)
	}
	c := &Cluster{runDir: filepath.Join(dir, "run")}
	conn := connect(t, c)
	exec1(t, conn, "CREATE TABLE kept (v text)")
	exec1(t, conn, "INSERT INTO kept VALUES ('x')")
	conn.Close(context.Background())
	pid := readPIDFile(filepath.Join(dir, "data")).pid

	cmd.Process.Kill()
	cmd.Wait()
	if stopsWithOwner {
		// The server notices its owner's death and shuts itself down cleanly.
		deadline := time.Now().Add(30 * time.Second)
		for postmasterRunning(pid, filepath.Join(dir, "data")) {
			if time.Now().After(deadline) {
				t.Fatalf("server %d still running 30s after its owner died", pid)
			}
			time.Sleep(pollInterval)
		}
		if !strings.Contains(readFile(t, filepath.Join(dir, "postgres.log")), "received fast shutdown request") {
			t.Fatal("server did not log a fast shutdown after its owner died")
		}
	}
	return pid
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orphanByReleasedLock starts a cluster and drops its ownership without
// stopping the server, as if the owner had died without taking it down.
func orphanByReleasedLock(t *testing.T, dir string) int {
	c := start(t, dir)
	conn := connect(t, c)
	exec1(t, conn, "CREATE TABLE kept (v text)")
	exec1(t, conn, "INSERT INTO kept VALUES ('x')")
	conn.Close(context.Background())
	// The owner is gone: it neither holds the lock nor supervises the server.
	c.stopping.Store(true)
	c.lock.Close()
	return c.pid()
}

func TestStartRejectsBadDir(t *testing.T) {
	tests := []struct {
		name, dir, want string
	}{
		{"empty", "", "Dir is required"},
		{"socket path too long", "/tmp/" + strings.Repeat("d", 80), "choose a shorter Dir"},
		{"double quote", "/tmp/a\"b", "double quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), Options{Dir: tt.dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start(%q) = %v, want error containing %q", tt.dir, err, tt.want)
			}
			if tt.dir != "" {
				if _, err := os.Stat(tt.dir); !os.IsNotExist(err) {
					t.Fatalf("Start created %s despite rejecting it", tt.dir)
				}
			}
		})
	}
}

func TestURL(t *testing.T) {
	tests := []struct{ runDir, db string }{
		{"/tmp/pg/run", "postgres"},
		{"/var/lib/gate house/run", "t_1"},
		{"/srv/a+b&c=d/run", "Odd Name"},
	}
	for _, tt := range tests {
		c := &Cluster{runDir: tt.runDir}
		u := c.URL(tt.db)
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", u, err)
		}
		if cfg.Host != tt.runDir || cfg.User != User || cfg.Database != tt.db || cfg.TLSConfig != nil {
			t.Fatalf("%s parsed to host=%q user=%q db=%q tls=%v", u, cfg.Host, cfg.User, cfg.Database, cfg.TLSConfig != nil)
		}
	}
}

func TestCanSearch(t *testing.T) {
	o := &owner{name: "pg", uid: 101, gid: 104, groups: []uint32{103}}
	tests := []struct {
		name     string
		mode     fs.FileMode
		uid, gid uint32
		want     bool
	}{
		{"owner with x", 0o700, 101, 0, true},
		{"owner without x, others with", 0o071, 101, 0, false},
		{"primary group", 0o710, 0, 104, true},
		{"supplementary group", 0o710, 0, 103, true},
		{"group without x", 0o701, 0, 104, false},
		{"other with x", 0o711, 0, 0, true},
		{"private to root", 0o700, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.canSearch(tt.mode, tt.uid, tt.gid); got != tt.want {
				t.Fatalf("canSearch(%v, %d, %d) = %v, want %v", tt.mode, tt.uid, tt.gid, got, tt.want)
			}
		})
	}
}

func TestCheckTraversable(t *testing.T) {
	// A user that owns nothing here: only the "other" bits apply to it.
	stranger := &owner{name: "stranger", uid: 4242424, gid: 4242424}
	tests := []struct {
		name    string
		mode    fs.FileMode
		wantErr bool
	}{
		{"searchable by others", 0o711, false},
		{"private", 0o700, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := clusterDir(t)
			if err := os.Chmod(parent, tt.mode); err != nil {
				t.Fatal(err)
			}
			err := checkTraversable(filepath.Join(parent, "cluster"), stranger)
			if tt.wantErr != (err != nil) {
				t.Fatalf("checkTraversable = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), parent+" ") {
				t.Fatalf("error %q does not name %s", err, parent)
			}
		})
	}
}

func TestVersionDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"9.6", "15", "common", "16", "10"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, d := range versionDirs(root) {
		got = append(got, filepath.Base(filepath.Dir(d)))
	}
	if want := []string{"16", "15", "10", "9.6"}; !slices.Equal(got, want) {
		t.Fatalf("versionDirs = %v, want %v", got, want)
	}
}

// assertUnprivileged checks that the cluster's files and server process
// belong to the expected user, which is never root.
func assertUnprivileged(t *testing.T, c *Cluster) {
	t.Helper()
	want := os.Geteuid()
	if o, _ := clusterOwner(); o != nil {
		want = int(o.uid)
	}
	for _, p := range []string{filepath.Join(c.dataDir, "PG_VERSION"), c.runDir, fmt.Sprintf("/proc/%d", c.pid())} {
		fi, err := os.Stat(p)
		if err != nil {
			if strings.HasPrefix(p, "/proc/") {
				continue // no /proc on this system
			}
			t.Fatal(err)
		}
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != want || uid == 0 {
			t.Fatalf("%s owned by uid %d, want %d (never root)", p, uid, want)
		}
	}
}

// A server killed under the cluster (kill -9, the OOM killer) is started
// again on the same socket, with its data, and clients reconnect.
func TestCrashedServerIsRestarted(t *testing.T) {
	dir := clusterDir(t)
	// Durable commits: the fast test settings would lose the last commits
	// to a crash, as they are meant to.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	conn := connect(t, c)
	exec1(t, conn, "CREATE TABLE kept (v text)")
	exec1(t, conn, "INSERT INTO kept VALUES ('x')")
	for round := 1; round <= 2; round++ {
		old := c.pid()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !(c.Ready() && c.pid() != old) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: server not restarted after 30 s (ready %v)", round, c.Ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := c.Restarts(); got != int64(round) {
			t.Fatalf("Restarts() = %d, want %d", got, round)
		}
		if got := rows(t, connect(t, c)); !slices.Equal(got, []string{"x"}) {
			t.Fatalf("round %d: rows = %v, want [x]", round, got)
		}
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed although nobody stopped the cluster")
	default:
	}
	stop(t, c)
	if c.Ready() {
		t.Error("Ready after Stop")
	}
}
