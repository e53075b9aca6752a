package synapse_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"text/tabwriter"
	"time"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

// BenchmarkReader100k generates a Synapse database of 100,000 users (an
// email, two devices with a token each, and the generator's mix of refresh
// chains, SSO links, guests, appservice users and orphans) with COPY, then
// reads every stream as a migration does and prints each table's rows per
// second and the heap while streaming. Run it with -benchtime 1x: the
// generation is the long part.
func BenchmarkReader100k(b *testing.B) {
	ctx := context.Background()
	dbURL := testkit.Postgres(b)
	start := time.Now()
	ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	gen := time.Since(start)
	var written int64
	for _, n := range ds.Rows {
		written += n
	}
	fmt.Fprintf(os.Stdout, "generated: %d rows in %v (%.0f rows/s; users %d, devices %d, access tokens %d)\n",
		written, gen.Round(time.Millisecond), float64(written)/gen.Seconds(),
		ds.Rows["users"], ds.Rows["devices"], ds.Rows["access_tokens"])

	var all []synapse.Stats
	var peak uint64
	sample := func(n int64) {
		if n%10_000 == 0 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}
	runtime.GC() // the heap measured is the reader's, not the generator's
	b.ResetTimer()
	for range b.N {
		all = all[:0]
		src, err := synapse.Open(ctx, dbURL, synapse.Options{ServerName: ds.Options.ServerName, Mode: synapse.ModeDryRun})
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		count := func() { n++; sample(n) }
		for _, read := range []func() (synapse.Stats, error){
			func() (synapse.Stats, error) { return src.Users(ctx, func(synapse.User) error { count(); return nil }) },
			func() (synapse.Stats, error) {
				return src.Emails(ctx, func(synapse.Email) error { count(); return nil })
			},
			func() (synapse.Stats, error) {
				return src.Devices(ctx, func(synapse.Device) error { count(); return nil })
			},
			func() (synapse.Stats, error) {
				return src.AccessTokens(ctx, func(synapse.AccessToken) error { count(); return nil })
			},
			func() (synapse.Stats, error) {
				return src.RefreshPairs(ctx, func(synapse.RefreshPair) error { count(); return nil })
			},
			func() (synapse.Stats, error) {
				return src.ExternalIDs(ctx, func(synapse.ExternalID) error { count(); return nil })
			},
			func() (synapse.Stats, error) {
				return src.RegistrationTokens(ctx, func(synapse.RegistrationToken) error { count(); return nil })
			},
		} {
			st, err := read()
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, st)
		}
		src.Close(ctx)
	}
	b.StopTimer()

	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "stream\trows read\trows handed on\ttime\trows/s\t\n")
	var rows int64
	var elapsed time.Duration
	for _, st := range all {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%.0f\t\n", st.Stream, st.Read, st.Emitted, st.Elapsed.Round(time.Millisecond), st.RowsPerSecond())
		rows += st.Read
		elapsed += st.Elapsed
	}
	fmt.Fprintf(tw, "all\t%d\t\t%v\t%.0f\t\n", rows, elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds())
	tw.Flush()
	fmt.Fprintf(os.Stdout, "peak heap in use while streaming: %.1f MiB\n", float64(peak)/(1<<20))
	b.ReportMetric(all[0].RowsPerSecond(), "users/s")
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}
