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
	"testing"
	"time"

	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

// BenchmarkMigrateSynapse imports a generated Synapse homeserver
// (GATEHOUSE_BENCH_SYNAPSE_USERS users, 100,000 by default, each with an
// email, 2 devices and their tokens) into a running `gatehouse serve` with
// the real `gatehouse migrate synapse`, and prints users/s for the users
// phase (users with their password hashes, emails and links) and for
// everything (users, then every device with its tokens, then registration
// tokens), with the total time. What bounds it: JetStream publishes
// (pipelined, eachWindow in flight), the projections applying one event at
// a time, sealing personal data (AES-GCM, one key per user, created in
// bulk); argon2id never runs during an import (hashes are kept as they are).
func BenchmarkMigrateSynapse(b *testing.B) {
	users := 100_000
	if v := os.Getenv("GATEHOUSE_BENCH_SYNAPSE_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("GATEHOUSE_BENCH_SYNAPSE_USERS=%q", v)
		}
		users = n
	}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		dbURL := testkit.Postgres(b)
		start := time.Now()
		ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: users, NoOddities: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d Synapse users in %s", ds.Expect.Emitted["users"], time.Since(start).Round(time.Millisecond))
		hsYAML := filepath.Join(b.TempDir(), "homeserver.yaml")
		if err := os.WriteFile(hsYAML, []byte("server_name: example.org\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		env := []string{"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org", "GATEHOUSE_LOG_LEVEL=error"}
		profiles := os.Getenv("GATEHOUSE_BENCH_PROFILE")
		if profiles != "" {
			env = append(env, "GATEHOUSE_CPU_PROFILE="+filepath.Join(profiles, "serve.pprof"))
		}
		s := startServe(b, dataDir(b), env...)
		var cliEnv []string
		if profiles != "" {
			cliEnv = append(cliEnv, "GATEHOUSE_CPU_PROFILE="+filepath.Join(profiles, "migrate.pprof"))
		}
		b.StartTimer()
		start = time.Now()
		out := runBenchCLI(b, s, cliEnv, "migrate", "synapse", "--synapse-database", dbURL, "--synapse-config", hsYAML,
			"--ignore-missing-auth-providers", "--format", "json", "--grpc", s.grpc)
		total := time.Since(start)
		b.StopTimer()
		rates := map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Progress *struct {
					Phase string  `json:"phase"`
					Done  int64   `json:"done"`
					Rate  float64 `json:"rate"`
					Final bool    `json:"final"`
				} `json:"progress"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Progress != nil && line.Progress.Final {
				rates[line.Progress.Phase] = line.Progress.Rate
			}
		}
		n := float64(ds.Expect.Emitted["users"])
		b.ReportMetric(rates["users"], "users/s(users)")
		b.ReportMetric(n/total.Seconds(), "users/s(everything)")
		fmt.Printf("migrate synapse: %d users (%d devices): users phase %.0f users/s; sessions phase %.0f devices/s; everything %.0f users/s in %s (check included)\n",
			ds.Expect.Emitted["users"], ds.Expect.Emitted["devices"], rates["users"], rates["sessions"], n/total.Seconds(), total.Round(time.Millisecond))
		s.stop(b)
	}
}

// runBenchCLI runs an admin command of the binary against s (no time limit
// but the benchmark's) and returns its standard output.
func runBenchCLI(b *testing.B, s *server, env []string, args ...string) string {
	b.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{}, s.cmd.Env...), env...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("gatehouse %v: %v\n%s", args, err, errOut.String())
	}
	return string(out)
}
