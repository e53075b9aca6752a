package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

// BenchmarkMigrateSynapse imports a generated Synapse homeserver
// (GATEHOUSE_BENCH_SYNAPSE_USERS users, 100,000 by default, each with an
// email, 2 devices and their tokens) into a running `gatehouse serve` with
// the real `gatehouse migrate synapse`, and prints users/s for the users
// phase (users with their password hashes, emails and links; the sessions
// phase overlaps it) and for everything (check included), the total time,
// and the CPU the server spent per user. GATEHOUSE_BENCH_PROFILE=dir writes
// CPU profiles of the server (serve.pprof) and of the import
// (migrate.pprof) there. What bounds it is the server's CPU per event
// (README, "Migrating from Synapse"); argon2id never runs during an import.
func BenchmarkMigrateSynapse(b *testing.B) {
	users := testkit.Count(b, "GATEHOUSE_BENCH_SYNAPSE_USERS", 100_000)
	for range b.N {
		alone := benchImport(b, users, -1, "users-")
		fmt.Printf("migrate synapse, users with passwords and emails alone: %d users: %.0f users/s in %s, check included (goal 10000); users phase %.0f users/s; %s\n",
			alone.users, alone.rate(), alone.total.Round(time.Millisecond), alone.phases["users"], alone.cpu())
		all := benchImport(b, users, 0, "")
		fmt.Printf("migrate synapse, everything: %d users (%d devices): %.0f users/s in %s, check included (goal 5000); users phase %.0f users/s, sessions phase %.0f devices/s (at once); %s\n",
			all.users, all.devices, all.rate(), all.total.Round(time.Millisecond), all.phases["users"], all.phases["sessions"], all.cpu())
		fmt.Printf("migrate synapse: what bounds it is the server's CPU per user (%.0f µs alone, %.0f µs with everything; about 4 and 6 stored events per user, each decoded and applied by every read model and follower that handles its type): on 2 idle cores %.0f and %.0f users/s at most, PostgreSQL not counted; argon2id never runs during an import\n",
			alone.cpuPerUser(), all.cpuPerUser(), 2e6/alone.cpuPerUser(), 2e6/all.cpuPerUser())
		b.ReportMetric(alone.rate(), "users/s(users)")
		b.ReportMetric(all.rate(), "users/s(everything)")
		b.ReportMetric(alone.cpuPerUser(), "serve-cpu-µs/user(users)")
		b.ReportMetric(all.cpuPerUser(), "serve-cpu-µs/user")
	}
}

// benchRun is what one import of the benchmark measured.
type benchRun struct {
	users, devices   int64
	total            time.Duration
	phases           map[string]float64 // final rate of each phase
	serveCPU, cliCPU time.Duration
	// cliPeak is the import process's peak resident memory: it holds every
	// device, token, address and link in memory before the users stream.
	cliPeak int64
	// serveWait is how long the server's threads were ready to run but
	// waited for a CPU (other processes had them): the machine's load.
	serveWait time.Duration
}

// cpuPerUser is the server's CPU per user imported, in µs: what bounds the
// import, whatever the machine's load.
func (r benchRun) cpuPerUser() float64 { return r.serveCPU.Seconds() * 1e6 / float64(r.users) }

// rate is users per second over the whole command.
func (r benchRun) rate() float64 { return float64(r.users) / r.total.Seconds() }

// cpu describes the CPU the server and the import spent.
func (r benchRun) cpu() string {
	return fmt.Sprintf("CPU: gatehouse serve %s (%.0f µs/user; on 2 cores that alone bounds the import at %.0f users/s, PostgreSQL not counted; its threads waited %s for a CPU other processes held), migrate %s",
		r.serveCPU.Round(time.Millisecond), r.cpuPerUser(), 2*float64(r.users)/r.serveCPU.Seconds(),
		r.serveWait.Round(time.Millisecond), r.cliCPU.Round(time.Millisecond)) +
		fmt.Sprintf("; migrate's peak memory %.0f MiB (%.0f bytes per user)", float64(r.cliPeak)/(1<<20), float64(r.cliPeak)/float64(r.users))
}

// benchImport generates a Synapse homeserver of users (devices each; 0: the
// generator's 2, -1: none) and imports it into a new gatehouse serve, timed.
func benchImport(b *testing.B, users, devices int, profilePrefix string) benchRun {
	b.Helper()
	ctx := context.Background()
	b.StopTimer()
	dbURL := testkit.Postgres(b)
	start := time.Now()
	ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: users, DevicesPerUser: devices, NoOddities: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d Synapse users (%d devices) in %s", ds.Expect.Emitted["users"], ds.Expect.Emitted["devices"], time.Since(start).Round(time.Millisecond))
	hsYAML := filepath.Join(b.TempDir(), "homeserver.yaml")
	if err := os.WriteFile(hsYAML, []byte("server_name: example.org\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org", "GATEHOUSE_LOG_LEVEL=error"}
	var cliEnv []string
	if profiles := os.Getenv("GATEHOUSE_BENCH_PROFILE"); profiles != "" {
		env = append(env, "GATEHOUSE_CPU_PROFILE="+filepath.Join(profiles, profilePrefix+"serve.pprof"))
		cliEnv = append(cliEnv, "GATEHOUSE_CPU_PROFILE="+filepath.Join(profiles, profilePrefix+"migrate.pprof"))
	}
	s := startServe(b, dataDir(b), env...)
	defer s.stop(b)
	r := benchRun{users: ds.Expect.Emitted["users"], devices: ds.Expect.Emitted["devices"], phases: map[string]float64{}}
	serveCPU, serveWait := processCPU(b, s.cmd.Process.Pid), runQueueWait(s.cmd.Process.Pid)
	b.StartTimer()
	start = time.Now()
	args := append([]string{"migrate", "synapse", "--synapse-database", dbURL, "--synapse-config", hsYAML,
		"--ignore-missing-auth-providers", "--format", "json", "--grpc", s.grpc}, benchImportFlags()...)
	out, cliCPU, cliPeak := runBenchCLI(b, s, cliEnv, args...)
	r.total = time.Since(start)
	b.StopTimer()
	r.serveCPU, r.cliCPU, r.cliPeak = processCPU(b, s.cmd.Process.Pid)-serveCPU, cliCPU, cliPeak
	r.serveWait = runQueueWait(s.cmd.Process.Pid) - serveWait
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Progress *struct {
				Phase string  `json:"phase"`
				Rate  float64 `json:"rate"`
				Final bool    `json:"final"`
			} `json:"progress"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Progress != nil && line.Progress.Final {
			r.phases[line.Progress.Phase] = line.Progress.Rate
		}
	}
	return r
}

// runBenchCLI runs an admin command of the binary against s (no time limit
// but the benchmark's) and returns its standard output, the CPU time it took
// and its peak resident memory in bytes.
func runBenchCLI(b *testing.B, s *server, env []string, args ...string) (string, time.Duration, int64) {
	b.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{}, s.cmd.Env...), env...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("gatehouse %v: %v\n%s\n%s", args, err, errOut.String(), out)
	}
	var peak int64
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = u.Maxrss * 1024 // kilobytes on Linux
	}
	return string(out), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), peak
}

// benchImportFlags are more flags for the import, from
// GATEHOUSE_BENCH_SYNAPSE_FLAGS (e.g. "--workers 8 --batch 2000").
func benchImportFlags() []string { return strings.Fields(os.Getenv("GATEHOUSE_BENCH_SYNAPSE_FLAGS")) }

// runQueueWait is how long the threads of a running process have waited,
// ready, for a CPU (the second field of each /proc/<pid>/task/*/schedstat);
// 0 where the kernel keeps no such statistics.
func runQueueWait(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				total += time.Duration(ns)
			}
		}
	}
	return total
}

// processCPU is the CPU time (user and system) a running process has used
// so far, from /proc.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// After the command name in parentheses: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}
